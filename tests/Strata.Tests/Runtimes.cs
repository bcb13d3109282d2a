using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Strata.Tests;

/// <summary>llama.cpp (through LLamaSharp's CPU build) holding one GGUF file, driven token by token.</summary>
internal sealed class LlamaCpp : IDisposable
{
    static LlamaCpp() => NativeLibraryConfig.All.WithLogCallback((level, message) =>
    {
        if (level == LLamaLogLevel.Error) Console.Error.Write($"llama.cpp: {message}");
    });

    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;

    public LlamaCpp(string gguf, int context)
    {
        // the KV cache in f32 and no flash attention: llama.cpp's defaults (an f16 cache) move logits by about 5e-3
        var p = new ModelParams(gguf)
        {
            GpuLayerCount = 0, ContextSize = (uint)context, BatchSize = (uint)context, UBatchSize = (uint)context, Threads = 2,
            TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false,
        };
        _weights = LLamaWeights.LoadFromFile(p);
        _context = _weights.CreateContext(p);
    }

    public int VocabSize => _weights.Vocab.Count;

    public int[] Tokenize(string text) => _context.Tokenize(text, addBos: false, special: false).Select(t => (int)t).ToArray();

    /// <summary>Logits [T][V] at every position of <paramref name="ids"/>, from an empty cache.</summary>
    public float[][] Logits(IReadOnlyList<int> ids)
    {
        _context.NativeHandle.MemoryClear(true);
        var batch = new LLamaBatch();
        for (int i = 0; i < ids.Count; i++) batch.Add(ids[i], i, LLamaSeqId.Zero, true);
        Decode(batch);
        return Enumerable.Range(0, ids.Count).Select(i => _context.NativeHandle.GetLogitsIth(i).ToArray()).ToArray();
    }

    /// <summary>Greedy continuation of <paramref name="prompt"/>, one decode per token, stopping at <paramref name="stop"/>.</summary>
    public List<int> Greedy(IReadOnlyList<int> prompt, int n, int? stop)
    {
        _context.NativeHandle.MemoryClear(true);
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Count; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Count - 1);
        Decode(batch);
        var output = new List<int>();
        for (int pos = prompt.Count; output.Count < n; pos++)
        {
            var logits = _context.NativeHandle.GetLogitsIth(batch.TokenCount - 1);
            int next = ArgMax(logits);
            if (next == stop) break;
            output.Add(next);
            batch.Clear();
            batch.Add(next, pos, LLamaSeqId.Zero, true);
            Decode(batch);
        }
        return output;
    }

    private void Decode(LLamaBatch batch)
    {
        var result = _context.NativeHandle.Decode(batch);
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {result}");
    }

    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}

/// <summary>ONNX Runtime holding an exported decoder, called with the inputs Optimum's decoder-with-past takes.</summary>
internal sealed class OnnxDecoder : IDisposable
{
    private readonly InferenceSession _session;
    private readonly int _layers, _heads, _headSize;

    public OnnxDecoder(string modelFile, int layers, int heads, int headSize)
    {
        _session = new InferenceSession(modelFile, new SessionOptions { IntraOpNumThreads = 2, GraphOptimizationLevel =
            GraphOptimizationLevel.ORT_ENABLE_ALL });
        (_layers, _heads, _headSize) = (layers, heads, headSize);
    }

    public IReadOnlyList<string> InputNames => _session.InputNames;
    public IReadOnlyList<string> OutputNames => _session.OutputNames;

    /// <summary>One call: <paramref name="ids"/> [B, T] after <paramref name="past"/> ([layers][key, value] of
    /// [B, H, P, D], or null for none), <paramref name="mask"/> [B, P + T] (0 = padding). Returns the logits
    /// [B, T, V] flat and the present keys and values.</summary>
    public (float[] Logits, long Vocab, float[][][] Present, long PresentLength) Run(long[,] ids, long[,] mask, float[][][]? past, long pastLength)
    {
        int b = ids.GetLength(0), t = ids.GetLength(1);
        var positions = new long[b * t];
        for (int r = 0; r < b; r++)
            for (int j = 0; j < t; j++) positions[r * t + j] = Math.Max(0, PositionOf(mask, r, (int)pastLength + j));
        var values = new List<OrtValue>
        {
            OrtValue.CreateTensorValueFromMemory(ids.Cast<long>().ToArray(), [b, t]),
            OrtValue.CreateTensorValueFromMemory(mask.Cast<long>().ToArray(), [b, mask.GetLength(1)]),
            OrtValue.CreateTensorValueFromMemory(positions, [b, t]),
        };
        var names = new List<string> { "input_ids", "attention_mask", "position_ids" };
        for (int l = 0; l < _layers; l++)
            for (int kv = 0; kv < 2; kv++)
            {
                names.Add($"past_key_values.{l}.{(kv == 0 ? "key" : "value")}");
                values.Add(past is null
                    ? OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [b, _heads, 0, _headSize])
                    : OrtValue.CreateTensorValueFromMemory(past[l][kv], [b, _heads, pastLength, _headSize]));
            }
        var outputNames = new List<string> { "logits" };
        for (int l = 0; l < _layers; l++) outputNames.AddRange([$"present.{l}.key", $"present.{l}.value"]);
        using var run = new RunOptions();
        using var outputs = _session.Run(run, names, values, outputNames);
        foreach (var v in values) v.Dispose();
        var logits = outputs[0];
        long vocab = logits.GetTensorTypeAndShape().Shape[2];
        var present = new float[_layers][][];
        for (int l = 0; l < _layers; l++)
            present[l] = [outputs[1 + 2 * l].GetTensorDataAsSpan<float>().ToArray(), outputs[2 + 2 * l].GetTensorDataAsSpan<float>().ToArray()];
        return (logits.GetTensorDataAsSpan<float>().ToArray(), vocab, present, pastLength + t);
    }

    /// <summary>Position of column <paramref name="j"/> of row <paramref name="r"/>: real tokens before it (left
    /// padding does not count), as transformers' generate computes position_ids from the attention mask.</summary>
    private static long PositionOf(long[,] mask, int r, int j)
    {
        long n = -1;
        for (int i = 0; i <= j; i++) n += mask[r, i];
        return n;
    }

    /// <summary>Greedy continuation of one prompt through the KV-cache inputs: the prompt in one call, then one token
    /// per call with the previous call's present as past.</summary>
    public List<int> Greedy(IReadOnlyList<int> prompt, int n, int? stop)
    {
        var ids = new long[1, prompt.Count];
        for (int i = 0; i < prompt.Count; i++) ids[0, i] = prompt[i];
        float[][][]? past = null;
        long pastLength = 0;
        var output = new List<int>();
        while (output.Count < n)
        {
            var mask = new long[1, pastLength + ids.GetLength(1)];
            for (int i = 0; i < mask.GetLength(1); i++) mask[0, i] = 1;
            var (logits, vocab, present, length) = Run(ids, mask, past, pastLength);
            int next = LlamaCpp.ArgMax(logits.AsSpan((int)((ids.GetLength(1) - 1) * vocab), (int)vocab));
            if (next == stop) break;
            output.Add(next);
            (past, pastLength, ids) = (present, length, new long[1, 1] { { next } });
        }
        return output;
    }

    public void Dispose() => _session.Dispose();
}
