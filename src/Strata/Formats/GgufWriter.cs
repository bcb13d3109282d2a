// GGUF version 3, the file format of llama.cpp (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), written
// little-endian: "GGUF", uint32 version, int64 tensor count, int64 metadata count; each metadata entry a string key, an
// int32 value type and the value (strings: uint64 byte length and UTF-8 bytes; arrays: element type, uint64 count,
// elements); each tensor an entry of name, uint32 dimension count, int64 sizes innermost first (a [rows, columns]
// matrix is written {columns, rows}), int32 ggml type and uint64 offset; then, from the next multiple of the alignment,
// the tensors' bytes in the same order, each padded to the alignment, at exactly the offsets announced.
using System.Buffers.Binary;
using System.Text;
using Strata.Util;

namespace Strata.Formats;

/// <summary>ggml's tensor types that Strata writes (ggml.h).</summary>
public enum GgmlType { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 }

internal sealed class GgufWriter
{
    public const uint Version = 3, Alignment = 32;

    private enum ValueType { UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9 }

    private readonly List<(string Key, Action<BinaryWriter> Write)> _metadata = new();
    private readonly List<(string Name, long[] Shape, GgmlType Type, byte[] Data)> _tensors = new();

    public void Add(string key, uint value) => _metadata.Add((key, w => { w.Write((int)ValueType.UInt32); w.Write(value); }));
    public void Add(string key, float value) => _metadata.Add((key, w => { w.Write((int)ValueType.Float32); w.Write(value); }));
    public void Add(string key, bool value) => _metadata.Add((key, w => { w.Write((int)ValueType.Bool); w.Write(value); }));
    public void Add(string key, string value) => _metadata.Add((key, w => { w.Write((int)ValueType.String); String(w, value); }));

    public void Add(string key, IReadOnlyList<string> values) => _metadata.Add((key, w =>
    {
        w.Write((int)ValueType.Array);
        w.Write((int)ValueType.String);
        w.Write((ulong)values.Count);
        foreach (var v in values) String(w, v);
    }));

    public void Add(string key, IReadOnlyList<float> values) => _metadata.Add((key, w =>
    {
        w.Write((int)ValueType.Array);
        w.Write((int)ValueType.Float32);
        w.Write((ulong)values.Count);
        foreach (var v in values) w.Write(v);
    }));

    public void Add(string key, IReadOnlyList<int> values) => _metadata.Add((key, w =>
    {
        w.Write((int)ValueType.Array);
        w.Write((int)ValueType.Int32);
        w.Write((ulong)values.Count);
        foreach (var v in values) w.Write(v);
    }));

    /// <summary>A tensor of <paramref name="shape"/> (outermost first, as PyTorch gives it) whose bytes are already in
    /// <paramref name="type"/>'s encoding.</summary>
    public void AddTensor(string name, long[] shape, GgmlType type, byte[] data)
    {
        if (Encoding.UTF8.GetByteCount(name) >= 64) throw new StrataException($"GGUF: the tensor name '{name}' is longer than llama.cpp's 63 bytes");
        _tensors.Add((name, shape, type, data));
    }

    private static void String(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static long Pad(long n) => (n + Alignment - 1) / Alignment * Alignment;

    /// <summary>Writes the file atomically.</summary>
    public void Write(string path) => AtomicFile.Write(path, stream =>
    {
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        w.Write("GGUF"u8);
        w.Write(Version);
        w.Write((long)_tensors.Count);
        w.Write((long)_metadata.Count + 1);
        String(w, "general.alignment");
        w.Write((int)ValueType.UInt32);
        w.Write(Alignment);
        foreach (var (key, write) in _metadata)
        {
            String(w, key);
            write(w);
        }
        long offset = 0;
        foreach (var (name, shape, type, data) in _tensors)
        {
            String(w, name);
            w.Write((uint)shape.Length);
            foreach (var n in shape.Reverse()) w.Write(n);                                // innermost first
            w.Write((int)type);
            w.Write((ulong)offset);
            offset += Pad(data.Length);
        }
        w.Flush();
        long start = Pad(stream.Position);
        Zeros(w, start - stream.Position);
        foreach (var (_, _, _, data) in _tensors)
        {
            w.Write(data);
            Zeros(w, Pad(data.Length) - data.Length);
        }
    });

    private static void Zeros(BinaryWriter w, long n)
    {
        for (long i = 0; i < n; i++) w.Write((byte)0);
    }

    /// <summary>Q8_0 blocks of a row-major float32 matrix whose rows are multiples of 32: per block of 32 values, the
    /// scale d = max|x| / 127 as fp16, then round(x / d) as int8 (ggml's quantize_row_q8_0_ref: the division uses the
    /// fp32 d, halves round away from zero).</summary>
    public static byte[] Q8_0(ReadOnlySpan<float> values)
    {
        const int Block = 32;
        if (values.Length % Block != 0) throw new ArgumentException("Q8_0 needs whole blocks of 32 values");
        var output = new byte[values.Length / Block * (2 + Block)];
        for (int b = 0; b < values.Length / Block; b++)
        {
            var x = values.Slice(b * Block, Block);
            float amax = 0;
            foreach (var v in x) amax = Math.Max(amax, Math.Abs(v));
            float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
            var block = output.AsSpan(b * (2 + Block), 2 + Block);
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            for (int j = 0; j < Block; j++) block[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
        }
        return output;
    }
}
