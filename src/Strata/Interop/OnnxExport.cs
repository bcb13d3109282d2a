// Export to ONNX (opset 17) for ONNX Runtime, ONNX Runtime GenAI and transformers.js: one graph of the forward pass
// with its KV cache as inputs and outputs, named as Hugging Face Optimum names a decoder with past (input_ids,
// attention_mask, position_ids, past_key_values.N.key / .value in, logits and present.N.key / .value out), written
// with the ONNX schema's protobuf classes. The folder is what transformers.js loads (onnx/model.onnx beside
// config.json and the tokenizer files) plus genai_config.json for ONNX Runtime GenAI's generic "decoder" model.
// Weights go into the model file, or, past 1.8 GB (protobuf messages stop at 2 GB), into onnx/model.onnx_data as
// ONNX's external data (64 KiB aligned, so it can be mapped).
//
// The graph is the GPT-NeoX block as Strata computes it: LayerNormalization, the fused QKV projection read per head as
// [q, k, v], rotary embeddings over the whole head ("rotate half", cos and sin tables gathered at position_ids), the
// cached keys and values concatenated in front of the new ones, scaled dot-product attention under a causal mask
// joined with attention_mask (left padding), exact erf GELU, the sequential residual, the final LayerNorm and the
// untied head.
using System.Text.Json;
using Google.Protobuf;
using Onnx;
using Strata.Modeling;
using Strata.Tokenization;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Interop;

public static class OnnxExport
{
    public const string ModelFile = "onnx/model.onnx", DataFile = "model.onnx_data";
    public const int Opset = 17;
    /// <summary>Initializers above this total go to external data (protobuf's 2 GB message limit, with room to spare).</summary>
    public const long InlineLimit = 1_800_000_000;
    private const int Float = (int)TensorProto.Types.DataType.Float, Int64 = (int)TensorProto.Types.DataType.Int64, Bool = (int)TensorProto.Types.DataType.Bool;

    /// <summary>Writes <paramref name="checkpoint"/>'s model as an ONNX folder at <paramref name="outDir"/>.</summary>
    public static ExportSummary Export(string checkpoint, string outDir, bool force = false, bool? external = null)
    {
        using var src = ExportSource.Load(checkpoint);
        return Export(src, outDir, force, external);
    }

    internal static ExportSummary Export(ExportSource src, string outDir, bool force, bool? external)
    {
        var modelPath = Path.Combine(outDir, ModelFile);
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
        {
            if (!force) throw new StrataException($"{outDir} is not empty: pass --force to replace it");
            Directory.Delete(outDir, recursive: true);
        }
        var c = src.Model.Config;
        // built in a sibling folder and renamed into place whole: nothing half-written is left at --out
        var staging = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outDir))!, $".{Path.GetFileName(Path.GetFullPath(outDir))}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(staging, "onnx"));
        try
        {
            long weightBytes = src.Model.parameters().Sum(p => p.numel() * 4) + src.Embedding.numel() * 4;
            bool toFile = external ?? weightBytes > InlineLimit;
            var g = new Graph(toFile ? Path.Combine(staging, "onnx", DataFile) : null);
            Build(g, src);
            var model = new ModelProto { IrVersion = 8, ProducerName = "strata", ProducerVersion = typeof(
                OnnxExport).Assembly.GetName().Version?.ToString() ?? "",
                Graph = g.Proto, DocString = $"{src.Info.Plan.Name}: GPT-NeoX decoder with past, exported by Strata" };
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
            g.Close();
            using (var f = File.Create(Path.Combine(staging, ModelFile))) model.WriteTo(f);
            WriteConfigs(staging, src, c);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outDir))!);
            Directory.Move(staging, outDir);
        }
        catch
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            throw;
        }
        var notes = new List<string>();
        if (src.MergedAdapters > 0) notes.Add($"{src.MergedAdapters} LoRA adapter(s) merged into their weights");
        var data = Path.Combine(outDir, "onnx", DataFile);
        if (File.Exists(data)) notes.Add($"weights in {data} (ONNX external data, {new FileInfo(data).Length / 1e6:F0} MB)");
        long bytes = Directory.EnumerateFiles(outDir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        return new ExportSummary(modelPath, bytes, src.MergedAdapters, notes);
    }

    /// <summary>config.json (transformers.js reads the cache's shape from it), the tokenizer files, generation_config.json
    /// and genai_config.json.</summary>
    private static void WriteConfigs(string dir, ExportSource src, ModelConfig c)
    {
        var tokenizer = src.Tokenizer;
        int? bos = (tokenizer as BpeTokenizer)?.IdOf("<s>");
        var config = HfExport.Config(c, src.Model.Depth, bos, tokenizer.EndOfText);
        config["transformers.js_config"] = new Dictionary<string, object> { ["dtype"] = "fp32", ["use_external_data_format"] =
            File.Exists(Path.Combine(dir, "onnx", DataFile)) };
        var indented = new JsonSerializerOptions { WriteIndented = true };
        AtomicFile.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config, indented));
        AtomicFile.WriteAllText(Path.Combine(dir, "generation_config.json"), JsonSerializer.Serialize(new Dictionary<string, object?>
            { ["bos_token_id"] = bos, ["eos_token_id"] = tokenizer.EndOfText, ["do_sample"] = false }, indented));
        if (tokenizer is BpeTokenizer bpe) TokenizerJson.WriteDirectory(bpe, dir, c.ContextLength);
        int eos = tokenizer.EndOfText ?? 0;
        var genai = new Dictionary<string, object>
        {
            ["model"] = new Dictionary<string, object>
            {
                ["type"] = "decoder", ["vocab_size"] = c.VocabSize, ["context_length"] = c.ContextLength,
                ["bos_token_id"] = bos ?? eos, ["eos_token_id"] = eos, ["pad_token_id"] = eos,
                ["decoder"] = new Dictionary<string, object>
                {
                    ["filename"] = ModelFile, ["head_size"] = c.HeadSize, ["hidden_size"] = c.DModel, ["num_attention_heads"] = c.NHead,
                    ["num_key_value_heads"] = c.NHead, ["num_hidden_layers"] = src.Model.Depth,
                    ["session_options"] = new Dictionary<string, object> { ["provider_options"] = Array.Empty<object>() },
                    ["inputs"] = new Dictionary<string, string> { ["input_ids"] = "input_ids", ["attention_mask"] = "attention_mask",
                        ["position_ids"] = "position_ids", ["past_key_names"] = "past_key_values.%d.key", ["past_value_names"] = "past_key_values.%d.value" },
                    ["outputs"] = new Dictionary<string, string> { ["logits"] = "logits", ["present_key_names"] = "present.%d.key",
                        ["present_value_names"] = "present.%d.value" },
                },
            },
            ["search"] = new Dictionary<string, object> { ["max_length"] = c.ContextLength, ["do_sample"] = false, ["num_beams"] = 1,
                ["past_present_share_buffer"] = false },
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "genai_config.json"), JsonSerializer.Serialize(genai, indented));
    }

    private static void Build(Graph g, ExportSource src)
    {
        var m = src.Model;
        var c = m.Config;
        int H = c.NHead, D = c.HeadSize, C = c.DModel;
        g.Input("input_ids", Int64, "batch_size", "sequence_length");
        g.Input("attention_mask", Int64, "batch_size", "total_sequence_length");
        g.Input("position_ids", Int64, "batch_size", "sequence_length");
        for (int i = 0; i < m.Depth; i++)
            foreach (var kv in new[] { "key", "value" }) g.Input($"past_key_values.{i}.{kv}", Float, "batch_size", H, "past_sequence_length", D);

        // the masks: causal (query position past + s attends to key positions <= it) and padding (attention_mask)
        var total = g.Node("Gather", [g.Node("Shape", ["attention_mask"]), g.Int64s("one", [1])], ("axis", 0L));   // [1]
        var seq = g.Node("Gather", [g.Node("Shape", ["input_ids"]), g.Int64s("one_b", [1])], ("axis", 0L));        // [1]
        var totalScalar = g.Node("Squeeze", [total, g.Int64s("axes0", [0])]);
        var past = g.Node("Sub", [total, seq]);
        // [1, T]
        var keys = g.Node("Unsqueeze", [g.Node("Range", [g.Int64Scalar("zero", 0), totalScalar, g.Int64Scalar("step", 1)]), g.Int64s("axes0b", [0])]);
        var queries = g.Node("Unsqueeze", [g.Node("Range", [g.Node("Squeeze", [past, g.Int64s("axes0c", [0])]), totalScalar, g.Int64Scalar("step_b", 1)]),
            g.Int64s("axes1", [1])]);                                                                                              // [S, 1]
        var causal = g.Node("LessOrEqual", [keys, queries]);                                                                       // [S, T]
        var padding = g.Node("Unsqueeze", [g.Node("Cast", ["attention_mask"], ("to", (long)Bool)), g.Int64s("axes12", [1, 2])]);   // [B, 1, 1, T]
        var allowed = g.Node("And", [causal, padding], name: "attention_allowed");                                                 // [B, 1, S, T]

        // rotary tables [context, D]: cos and sin of position x inverse frequency, each half repeated ("rotate half")
        var (cos, sin) = RotaryTables(c);
        // [B,1,S,D]
        var cosAt = g.Node("Unsqueeze", [g.Node("Gather", [g.Initializer("rotary.cos", cos), "position_ids"], ("axis", 0L)), g.Int64s("axes1b", [1])]);
        var sinAt = g.Node("Unsqueeze", [g.Node("Gather", [g.Initializer("rotary.sin", sin), "position_ids"], ("axis", 0L)), g.Int64s("axes1c", [1])]);
        cos.Dispose();
        sin.Dispose();

        var x = g.Node("Gather", [g.Initializer("embed_in.weight", src.Embedding), "input_ids"], ("axis", 0L));                  // [B, S, C]
        var scale = g.FloatScalar("attention_scale", (float)(1 / Math.Sqrt(D)));
        var minimum = g.FloatScalar("masked", float.MinValue);
        for (int i = 0; i < m.Depth; i++)
        {
            string l = $"layers.{i}.";
            var h = LayerNorm(g, x, src, l + "input_layernorm", c.LayerNormEps);
            var qkv = Linear(g, h, src, l + "attention.query_key_value");                                                         // [B, S, 3C]
            var perHead = g.Node("Reshape", [qkv, g.Int64s(l + "qkv_shape", [0, 0, H, 3, D])]);                                  // [B, S, H, 3, D]
            var parts = g.Nodes("Split", [perHead, g.Int64s(l + "split", [1, 1, 1])], 3, ("axis", 3L));
            string Heads(string t, string what) =>                                                                                // [B, H, S, D]
                g.Node("Transpose", [g.Node("Squeeze", [t, g.Int64s($"{l}squeeze_{what}", [3])])], ("perm", new long[] { 0, 2, 1, 3 }));
            string Rotate(string t)
            {
                var halves = g.Nodes("Split", [t, g.Int64s(g.Fresh("halves"), [D / 2, D / 2])], 2, ("axis", 3L));
                var rotated = g.Node("Concat", [g.Node("Neg", [halves[1]]), halves[0]], ("axis", 3L));
                return g.Node("Add", [g.Node("Mul", [t, cosAt]), g.Node("Mul", [rotated, sinAt])]);
            }
            var q = Rotate(Heads(parts[0], "q"));
            var k = Rotate(Heads(parts[1], "k"));
            var v = Heads(parts[2], "v");
            var keysAll = g.Node("Concat", [$"past_key_values.{i}.key", k], ("axis", 2L), name: $"present.{i}.key");
            var valuesAll = g.Node("Concat", [$"past_key_values.{i}.value", v], ("axis", 2L), name: $"present.{i}.value");
            var scores = g.Node("Mul", [g.Node("MatMul", [q, g.Node("Transpose", [keysAll], ("perm", new long[] { 0, 1, 3, 2 }))]), scale]);   // [B, H, S, T]
            var probs = g.Node("Softmax", [g.Node("Where", [allowed, scores, minimum])], ("axis", -1L));
            var context = g.Node("Reshape", [g.Node("Transpose", [g.Node("MatMul", [probs, valuesAll])], ("perm", new long[] { 0, 2, 1, 3 })),
                g.Int64s(l + "merge_heads", [0, 0, C])]);                                                                          // [B, S, C]
            x = g.Node("Add", [x, Linear(g, context, src, l + "attention.dense")]);
            var h2 = LayerNorm(g, x, src, l + "post_attention_layernorm", c.LayerNormEps);
            var up = Linear(g, h2, src, l + "mlp.dense_h_to_4h");
            var gelu = g.Node("Mul", [g.Node("Mul", [up, g.FloatScalar(g.Fresh("half"), 0.5f)]),
                g.Node("Add", [g.Node("Erf", [g.Node("Mul", [up, g.FloatScalar(g.Fresh("inv_sqrt2"), (float)(1 / Math.Sqrt(2)))])]), g.FloatScalar(
                    g.Fresh("one"), 1f)])]);
            x = g.Node("Add", [x, Linear(g, gelu, src, l + "mlp.dense_4h_to_h")]);
        }
        var final = LayerNorm(g, x, src, "final_layer_norm", c.LayerNormEps);
        g.Node("MatMul", [final, g.Initializer("embed_out.weight.T", src.Weight("embed_out.weight"), transpose: true)], name: "logits");
        g.Output("logits", Float, "batch_size", "sequence_length", c.VocabSize);
        for (int i = 0; i < m.Depth; i++)
            foreach (var kv in new[] { "key", "value" }) g.Output($"present.{i}.{kv}", Float, "batch_size", H, "total_sequence_length", D);
    }

    private static string LayerNorm(Graph g, string x, ExportSource src, string name, double eps) =>
        g.Node("LayerNormalization", [x, g.Initializer(name + ".weight", src.Weight(name + ".weight")), g.Initializer(name + ".bias", src.Weight(name
            + ".bias"))],
            ("axis", -1L), ("epsilon", (float)eps));

    /// <summary>x W^T + b, the weight stored transposed ([in, out]) as MatMul wants it.</summary>
    private static string Linear(Graph g, string x, ExportSource src, string name) =>
        g.Node("Add", [g.Node("MatMul", [x, g.Initializer(name + ".weight.T", src.Weight(name + ".weight"), transpose: true)]),
            g.Initializer(name + ".bias", src.Weight(name + ".bias"))]);

    /// <summary>cos and sin of (position x theta^(-2i/D)) for every position of the context, [T, D] with each half
    /// repeated, as Strata's rotary embedding computes them.</summary>
    private static (Tensor Cos, Tensor Sin) RotaryTables(ModelConfig c)
    {
        using var scope = torch.NewDisposeScope();
        int D = c.HeadSize;
        using Scalar size = D;
        var inv = torch.pow(c.RopeTheta, -Scalars.Arange(0, D, ScalarType.Float64, step: 2).div(size));     // [D/2]
        var angles = torch.outer(Scalars.Arange(0, c.ContextLength, ScalarType.Float64), inv);             // [T, D/2]
        var full = torch.cat([angles, angles], 1);
        return (full.cos().to(ScalarType.Float32).MoveToOuterDisposeScope(), full.sin().to(ScalarType.Float32).MoveToOuterDisposeScope());
    }

    /// <summary>A graph under construction: nodes with fresh output names, initializers inline or in an external file.</summary>
    private sealed class Graph(string? dataPath)
    {
        public readonly GraphProto Proto = new() { Name = "strata" };
        private readonly FileStream? _data = dataPath is null ? null : new FileStream(dataPath, FileMode.CreateNew, FileAccess.Write);
        private int _next;

        public string Fresh(string stem) => $"{stem}_{_next++}";

        public string Node(string op, string[] inputs, params (string Name, object Value)[] attributes) => Node(op, inputs, attributes, null);

        public string Node(string op, string[] inputs, (string Name, object Value) attribute, string? name) => Node(op, inputs, [attribute], name);

        public string Node(string op, string[] inputs, string? name) => Node(op, inputs, [], name);

        private string Node(string op, string[] inputs, (string Name, object Value)[] attributes, string? name)
        {
            var output = name ?? Fresh(op.ToLowerInvariant());
            var node = new NodeProto { OpType = op, Name = Fresh("node_" + op) };
            node.Input.AddRange(inputs);
            node.Output.Add(output);
            foreach (var (n, v) in attributes) node.Attribute.Add(Attribute(n, v));
            Proto.Node.Add(node);
            return output;
        }

        public string[] Nodes(string op, string[] inputs, int outputs, params (string Name, object Value)[] attributes)
        {
            var node = new NodeProto { OpType = op, Name = Fresh("node_" + op) };
            node.Input.AddRange(inputs);
            var names = Enumerable.Range(0, outputs).Select(_ => Fresh(op.ToLowerInvariant())).ToArray();
            node.Output.AddRange(names);
            foreach (var (n, v) in attributes) node.Attribute.Add(Attribute(n, v));
            Proto.Node.Add(node);
            return names;
        }

        private static AttributeProto Attribute(string name, object value)
        {
            var a = new AttributeProto { Name = name };
            switch (value)
            {
                case long i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
                case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
                case long[] ints: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ints); break;
                default: throw new ArgumentException($"attribute {name}: {value.GetType().Name}");
            }
            return a;
        }

        public void Input(string name, int type, params object[] dims) => Proto.Input.Add(Value(name, type, dims));
        public void Output(string name, int type, params object[] dims) => Proto.Output.Add(Value(name, type, dims));

        private static ValueInfoProto Value(string name, int type, object[] dims)
        {
            var shape = new TensorShapeProto();
            foreach (var d in dims)
                shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s }
                    : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
            return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = type, Shape = shape } } };
        }

        public string Int64s(string name, long[] values)
        {
            var t = new TensorProto { Name = name, DataType = Int64 };
            t.Dims.Add(values.Length);
            t.Int64Data.AddRange(values);
            Proto.Initializer.Add(t);
            return name;
        }

        public string Int64Scalar(string name, long value)
        {
            var t = new TensorProto { Name = name, DataType = Int64 };
            t.Int64Data.Add(value);
            Proto.Initializer.Add(t);
            return name;
        }

        public string FloatScalar(string name, float value)
        {
            var t = new TensorProto { Name = name, DataType = Float };
            t.FloatData.Add(value);
            Proto.Initializer.Add(t);
            return name;
        }

        /// <summary>A float32 weight (transposed when asked), its bytes inline or appended to the external data file.</summary>
        public string Initializer(string name, Tensor weight, bool transpose = false)
        {
            using var scope = torch.NewDisposeScope();
            var t = (transpose ? weight.detach().t() : weight.detach()).cpu().to(ScalarType.Float32).contiguous();
            var proto = new TensorProto { Name = name, DataType = Float };
            proto.Dims.AddRange(t.shape);
            var bytes = t.bytes;
            if (_data is null) proto.RawData = ByteString.CopyFrom(bytes);
            else
            {
                long offset = (_data.Position + 65535) / 65536 * 65536;                          // mappable: 64 KiB aligned
                _data.Write(new byte[offset - _data.Position]);
                _data.Write(bytes);
                proto.DataLocation = TensorProto.Types.DataLocation.External;
                foreach (var (k, v) in new[] { ("location", DataFile), ("offset", offset.ToString()), ("length", bytes.Length.ToString()) })
                    proto.ExternalData.Add(new StringStringEntryProto { Key = k, Value = v });
            }
            Proto.Initializer.Add(proto);
            return name;
        }

        public void Close()
        {
            _data?.Flush(flushToDisk: true);
            _data?.Dispose();
        }
    }
}
