// Export to GGUF for llama.cpp (and Ollama, LM Studio, LLamaSharp): architecture "gptneox" with Strata's
// hyper-parameters (sequential residual, full rotary over the head, the model's rope theta and LayerNorm epsilon, its
// context), tensors named as llama.cpp's gptneox loader expects, and the tokenizer embedded. llama.cpp's graph takes
// the fused QKV projection as [all queries; all keys; all values], where GPT-NeoX (and Strata) interleave them per head
// ([head][q, k, v][head size]); the rows are reordered here as llama.cpp's own converter does (convert_hf_to_gguf.py,
// GPTNeoXModel). Matrices are written in the chosen type (f32, f16, bf16 or q8_0), norms and biases always in f32.
//
// The tokenizer: llama.cpp's BPE with the "gemma4" pre-tokenizer applies merges by rank directly on Unicode code points
// (no byte-level mapping, no word regex), which is what a bvv241-style vocabulary does; it splits the text at
// newlines and writes spaces as U+2581 first, so the vocabulary is written with U+2581 for spaces. Differences from
// Strata's tokenization, all of text Strata's vocabularies rarely or never merge: a token spanning a newline and
// something else is never formed, a character outside the vocabulary is dropped instead of becoming <unk>, and a
// literal U+2581 in the text reads as a space (the vocabulary's own U+2581 token is kept out of reach).
using System.Runtime.InteropServices;
using Strata.Formats;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Interop;

/// <summary>What an export wrote.</summary>
public sealed record ExportSummary(string Path, long Bytes, int MergedAdapters, IReadOnlyList<string> Notes);

public static class GgufExport
{
    private const char SpaceMark = '\u2581';
    private enum TokenType { Normal = 1, Unknown = 2, Control = 3, Unused = 5 }

    /// <summary>Writes <paramref name="checkpoint"/>'s model to <paramref name="path"/> (refusing an existing file unless
    /// <paramref name="force"/>), its matrices in <paramref name="type"/>.</summary>
    public static ExportSummary Export(string checkpoint, string path, GgmlType type, bool force = false)
    {
        if (File.Exists(path) && !force) throw new StrataException($"{path} already exists: pass --force to replace it");
        using var src = ExportSource.Load(checkpoint);
        var m = src.Model;
        var c = m.Config;
        if (type == GgmlType.Q8_0 && (c.DModel % 32 != 0 || c.Ffn % 32 != 0))
            throw new StrataException(
                $"--dtype q8_0: quantises rows in blocks of 32, but d_model {c.DModel} or the feed-forward width {c.Ffn} is not a multiple of 32");
        if (c.VocabSize > int.MaxValue / 2) throw new StrataException($"GGUF: a vocabulary of {c.VocabSize:N0} is past what llama.cpp reads");
        var notes = new List<string>();
        var w = new GgufWriter();
        w.Add("general.architecture", "gptneox");
        w.Add("general.name", src.Info.Plan.Name);
        w.Add("general.file_type", (uint)(type switch { GgmlType.F32 => 0, GgmlType.F16 => 1, GgmlType.Q8_0 => 7, _ => 32 }));
        w.Add("gptneox.context_length", (uint)c.ContextLength);
        w.Add("gptneox.embedding_length", (uint)c.DModel);
        w.Add("gptneox.block_count", (uint)m.Depth);
        w.Add("gptneox.feed_forward_length", (uint)c.Ffn);
        w.Add("gptneox.attention.head_count", (uint)c.NHead);
        w.Add("gptneox.attention.head_count_kv", (uint)c.NHead);
        w.Add("gptneox.attention.layer_norm_epsilon", (float)c.LayerNormEps);
        w.Add("gptneox.rope.dimension_count", (uint)c.HeadSize);                           // full rotary
        w.Add("gptneox.rope.freq_base", (float)c.RopeTheta);
        w.Add("gptneox.use_parallel_residual", false);                                     // the paper's sequential residual
        AddTokenizer(w, src.Tokenizer, c.VocabSize, notes);

        void Matrix(string name, Tensor t) => w.AddTensor(name, t.shape, type, Encode(t, type));
        void Vector(string name, Tensor t) => w.AddTensor(name, t.shape, GgmlType.F32, Encode(t, GgmlType.F32));
        Matrix("token_embd.weight", src.Embedding);
        for (int i = 0; i < m.Depth; i++)
        {
            string s = $"layers.{i}.", b = $"blk.{i}.";
            Vector(b + "attn_norm.weight", src.Weight(s + "input_layernorm.weight"));
            Vector(b + "attn_norm.bias", src.Weight(s + "input_layernorm.bias"));
            using (var qkv = GroupQkv(src.Weight(s + "attention.query_key_value.weight"), c.NHead)) Matrix(b + "attn_qkv.weight", qkv);
            using (var qkvBias = GroupQkv(src.Weight(s + "attention.query_key_value.bias"), c.NHead)) Vector(b + "attn_qkv.bias", qkvBias);
            Matrix(b + "attn_output.weight", src.Weight(s + "attention.dense.weight"));
            Vector(b + "attn_output.bias", src.Weight(s + "attention.dense.bias"));
            Vector(b + "ffn_norm.weight", src.Weight(s + "post_attention_layernorm.weight"));
            Vector(b + "ffn_norm.bias", src.Weight(s + "post_attention_layernorm.bias"));
            Matrix(b + "ffn_up.weight", src.Weight(s + "mlp.dense_h_to_4h.weight"));
            Vector(b + "ffn_up.bias", src.Weight(s + "mlp.dense_h_to_4h.bias"));
            Matrix(b + "ffn_down.weight", src.Weight(s + "mlp.dense_4h_to_h.weight"));
            Vector(b + "ffn_down.bias", src.Weight(s + "mlp.dense_4h_to_h.bias"));
        }
        Vector("output_norm.weight", src.Weight("final_layer_norm.weight"));
        Vector("output_norm.bias", src.Weight("final_layer_norm.bias"));
        Matrix("output.weight", src.Weight("embed_out.weight"));
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        w.Write(path);
        if (src.MergedAdapters > 0) notes.Insert(0, $"{src.MergedAdapters} LoRA adapter(s) merged into their weights");
        return new ExportSummary(path, new FileInfo(path).Length, src.MergedAdapters, notes);
    }

    /// <summary>Rows (or elements) of a fused QKV projection from per-head [q, k, v] to [all q; all k; all v].</summary>
    internal static Tensor GroupQkv(Tensor t, int heads)
    {
        long rows = t.shape[0], head = rows / 3 / heads;
        var perHead = t.dim() == 2 ? t.reshape(heads, 3, head, t.shape[1]) : t.reshape(heads, 3, head);
        using (perHead)
        using (var grouped = t.dim() == 2 ? perHead.permute(1, 0, 2, 3) : perHead.permute(1, 0, 2))
            return t.dim() == 2 ? grouped.reshape(rows, t.shape[1]).contiguous() : grouped.reshape(rows).contiguous();
    }

    /// <summary>A float32 tensor's bytes in <paramref name="type"/> (row-major, little-endian).</summary>
    private static byte[] Encode(Tensor t, GgmlType type)
    {
        using var scope = torch.NewDisposeScope();
        var cpu = t.detach().cpu().to(ScalarType.Float32).contiguous();
        return type switch
        {
            GgmlType.F16 => cpu.to(ScalarType.Float16).bytes.ToArray(),
            GgmlType.BF16 => cpu.to(ScalarType.BFloat16).bytes.ToArray(),
            GgmlType.Q8_0 => GgufWriter.Q8_0(MemoryMarshal.Cast<byte, float>(cpu.bytes)),
            _ => cpu.bytes.ToArray(),
        };
    }

    /// <summary>The vocabulary, its merges and its special tokens as llama.cpp's code-point BPE reads them.</summary>
    private static void AddTokenizer(GgufWriter w, ITokenizer tokenizer, int vocab, List<string> notes)
    {
        var tokens = new string[vocab];
        var types = new int[vocab];
        IReadOnlyList<(string Left, string Right)> merges = [];
        int? bos = null, unk = null, pad = null;
        switch (tokenizer)
        {
            case BpeTokenizer bpe:
                for (int i = 0; i < Math.Min(vocab, bpe.VocabSize); i++)
                {
                    tokens[i] = bpe.TokenOf(i);
                    types[i] = (int)(bpe.SpecialTokens.Contains(tokens[i]) ? tokens[i] == bpe.UnkToken ? TokenType.Unknown : TokenType.Control
                        : TokenType.Normal);
                }
                merges = bpe.Merges;
                (bos, unk, pad) = (bpe.IdOf("<s>"), bpe.Unk, bpe.IdOf("<pad>"));
                break;
            case CodePointTokenizer:
                for (int i = 0; i < vocab; i++)
                {
                    bool special = i >= 0xE000 && i - 0xE000 < Bvv241Builder.SpecialTokens.Count;
                    tokens[i] = CodePointTokenizer.HasId(i) && i < 65536 ? ((char)i).ToString() : special ? Bvv241Builder.SpecialTokens[i - 0xE000] : "";
                    types[i] = (int)(special ? TokenType.Control : TokenType.Normal);
                }
                (unk, bos) = (Bvv241Builder.Unk, tokenizer.EndOfText);
                break;
            default:
                throw new StrataException($"GGUF: the tokenizer {tokenizer.Name} is not a code-point BPE vocabulary (bvv241, a trained one, codepoint); " +
                                          "llama.cpp's byte-level vocabularies are not written by Strata");
        }
        // spaces as U+2581, as llama.cpp escapes them before merging; the vocabulary's own U+2581 tokens kept unique
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int hidden = 0;
        for (int i = 0; i < vocab; i++)
        {
            string t = tokens[i] ?? "";
            if (t.Contains(SpaceMark) || t.Length == 0 || types[i] == 0)
            {
                if (t.Length > 0 && types[i] != 0) hidden++;
                (tokens[i], types[i]) = ($"<unused-{i}>", (int)TokenType.Unused);
                continue;
            }
            if (types[i] == (int)TokenType.Normal) t = t.Replace(' ', SpaceMark);
            if (!seen.Add(t)) throw new StrataException($"GGUF: token {i} '{t}' appears twice once spaces are written as U+2581");
            tokens[i] = t;
        }
        if (hidden > 0) notes.Add($"{hidden} token(s) holding U+2581 are out of llama.cpp's reach (it reads U+2581 in text as a space)");
        var written = merges.Select(x => (L: x.Left.Replace(' ', SpaceMark), R: x.Right.Replace(' ', SpaceMark)))
            .Where(x => seen.Contains(x.L) && seen.Contains(x.R) && seen.Contains(x.L + x.R)).Select(x => $"{x.L} {x.R}").ToList();
        w.Add("tokenizer.ggml.model", "gpt2");
        w.Add("tokenizer.ggml.pre", "gemma4");
        w.Add("tokenizer.ggml.tokens", tokens);
        w.Add("tokenizer.ggml.token_type", types);
        w.Add("tokenizer.ggml.merges", written);
        if (bos is { } b) w.Add("tokenizer.ggml.bos_token_id", (uint)b);
        else if (tokenizer.EndOfText is { } e) w.Add("tokenizer.ggml.bos_token_id", (uint)e);
        if (tokenizer.EndOfText is { } eos) w.Add("tokenizer.ggml.eos_token_id", (uint)eos);
        if (unk is { } u) w.Add("tokenizer.ggml.unknown_token_id", (uint)u);
        if (pad is { } p) w.Add("tokenizer.ggml.padding_token_id", (uint)p);
        w.Add("tokenizer.ggml.add_bos_token", false);
        w.Add("tokenizer.ggml.add_eos_token", false);
        w.Add("tokenizer.ggml.add_space_prefix", false);
    }
}
