// The safetensors format (huggingface/safetensors): 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the raw little-endian
// tensor bytes, offsets relative to the end of the header. Written here with the header padded by spaces to 8 bytes.
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Formats;

/// <summary>One tensor entry of a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>Reads a safetensors file lazily: the header at open, each tensor's bytes on demand.</summary>
public sealed class SafetensorsFile : IDisposable
{
    private static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    private readonly FileStream _stream;
    private readonly long _dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Every tensor's sha256 as the writer recorded it (__metadata__ "tensor_sha256", a JSON object by name), or null
    /// for a file written without them; <see cref="Read"/> checks a tensor against it.</summary>
    public IReadOnlyDictionary<string, string>? Checksums { get; }

    /// <summary>The metadata key of the per-tensor checksums.</summary>
    public const string ChecksumKey = "tensor_sha256";

    public SafetensorsFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new StrataException($"{path}: file not found");
        _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            (Entries, Metadata, _dataStart) = ReadHeader(_stream, path);
            if (Metadata.TryGetValue(ChecksumKey, out var sums))
            {
                try { Checksums = JsonSerializer.Deserialize<Dictionary<string, string>>(sums); }
                catch (JsonException) { throw new StrataException($"{path}: its per-tensor checksums are not readable (the header is damaged)"); }
            }
        }
        catch
        {
            _stream.Dispose();
            throw;
        }
    }

    public static string DTypeName(ScalarType t) => DTypes.First(kv => kv.Value.Type == t).Key;
    public static int ElementSize(string dtype) => DTypes[dtype].Size;

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>, long) ReadHeader(FileStream s, string path)
    {
        long fileLength = s.Length;
        Span<byte> lenBytes = stackalloc byte[8];
        if (s.Read(lenBytes) != 8) throw new StrataException($"{path}: not a safetensors file (shorter than its 8-byte header length)");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (n > (ulong)(fileLength - 8)) throw new StrataException($"{path}: header length {n} runs past the end of the file ({fileLength} bytes)");
        if (n > 100_000_000) throw new StrataException($"{path}: header length {n} is implausibly large");
        var header = new byte[n];
        s.ReadExactly(header);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (Exception e) when (e is JsonException or ArgumentException or DecoderFallbackException)
        {
            throw new StrataException($"{path}: header is not valid UTF-8 JSON");
        }
        using var _ = doc;
        try { return ReadEntries(doc, path, fileLength, 8 + (long)n); }
        catch (InvalidOperationException) { throw new StrataException($"{path}: header has a field of the wrong JSON type"); }
    }

    private static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>, long) ReadEntries(JsonDocument doc, string path,
        long fileLength, long dataStart)
    {
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new StrataException($"{path}: header is not a JSON object");
        long dataLength = fileLength - dataStart;
        var entries = new Dictionary<string, SafetensorsEntry>();
        var metadata = new Dictionary<string, string>();
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw new StrataException($"{path}: __metadata__ must be an object of strings");
                foreach (var m in prop.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String) throw new StrataException($"{path}: __metadata__.{m.Name} must be a string");
                    metadata[m.Name] = m.Value.GetString()!;
                }
                continue;
            }
            var e = prop.Value;
            string where = $"{path}: tensor '{prop.Name}'";
            if (e.ValueKind != JsonValueKind.Object
                || !e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
                || !e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
                || !e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
                throw new StrataException($"{where}: entry needs dtype, shape and data_offsets [begin, end]");
            var dtype = dt.GetString()!;
            if (!DTypes.TryGetValue(dtype, out var info)) throw new StrataException($"{where}: unknown dtype '{dtype}'");
            if (sh.GetArrayLength() > 32) throw new StrataException($"{where}: {sh.GetArrayLength()} dimensions");
            var shape = sh.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt64(out var v) && v >= 0 ? v
                : throw new StrataException($"{where}: bad shape")).ToArray();
            long begin = off[0].ValueKind == JsonValueKind.Number && off[0].TryGetInt64(out var b) ? b : -1;
            long end = off[1].ValueKind == JsonValueKind.Number && off[1].TryGetInt64(out var en) ? en : -1;
            if (begin < 0 || end < begin || end > dataLength)
                throw new StrataException($"{where}: data_offsets [{begin}, {end}] lie outside the {dataLength} data bytes");
            long expected;
            try { expected = checked(shape.Aggregate(1L, (a, x) => a * x) * info.Size); }
            catch (OverflowException) { throw new StrataException($"{where}: shape [{string.Join(", ", shape)}] has more elements than any file can hold"); }
            if (end - begin != expected)
                throw new StrataException($"{where}: {end - begin} bytes for dtype {dtype} shape [{string.Join(", ", shape)}], expected {expected}");
            entries[prop.Name] = new SafetensorsEntry(prop.Name, dtype, shape, begin, end);
        }
        var sorted = entries.Values.Where(x => x.End > x.Begin).OrderBy(x => x.Begin).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Begin < sorted[i - 1].End)
                throw new StrataException($"{path}: tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap");
        return (entries, metadata, dataStart);
    }

    public bool Contains(string name) => Entries.ContainsKey(name);

    /// <summary>The tensor's raw little-endian bytes.</summary>
    public byte[] ReadBytes(string name)
    {
        var e = Entries.TryGetValue(name, out var x) ? x : throw new StrataException($"{Path}: no tensor named '{name}'");
        var buffer = new byte[e.End - e.Begin];
        _stream.Seek(_dataStart + e.Begin, SeekOrigin.Begin);
        _stream.ReadExactly(buffer);
        return buffer;
    }

    /// <summary>The tensor on the CPU, in its stored dtype (read in pieces of at most 1 GiB, so any size works).</summary>
    public Tensor Read(string name)
    {
        var e = Entries.TryGetValue(name, out var x) ? x : throw new StrataException($"{Path}: no tensor named '{name}'");
        var t = torch.empty(e.Shape, dtype: DTypes[e.DType].Type);
        long total = e.End - e.Begin, elementSize = DTypes[e.DType].Size;
        string? expected = Checksums is null ? null
            : Checksums.TryGetValue(name, out var sum) ? sum : throw new StrataException(
                $"{Path}: tensor '{name}' has no recorded checksum (the header is damaged)");
        using var sha = expected is null ? null : System.Security.Cryptography.IncrementalHash.CreateHash(
            System.Security.Cryptography.HashAlgorithmName.SHA256);
        if (total > 0)
        {
            using var flat = t.view(-1);
            long perChunk = Math.Max(1, Chunk / elementSize);
            _stream.Seek(_dataStart + e.Begin, SeekOrigin.Begin);
            for (long start = 0; start < flat.numel(); start += perChunk)
            {
                long count = Math.Min(perChunk, flat.numel() - start);
                var buffer = new byte[count * elementSize];
                _stream.ReadExactly(buffer);
                sha?.AppendData(buffer);
                using var part = flat.narrow(0, start, count);
                part.bytes = buffer;
            }
        }
        if (sha is not null && Convert.ToHexStringLower(sha.GetHashAndReset()) != expected)
        {
            t.Dispose();
            throw new StrataException($"{Path}: tensor '{name}' does not match the sha256 recorded for it: the file is damaged");
        }
        return t;
    }

    /// <summary>Bytes per piece when reading and writing tensor data (spans and arrays stop at 2 GiB).</summary>
    internal static long Chunk = 1L << 30;

    public void Dispose() => _stream.Dispose();
}

/// <summary>Writes safetensors files atomically.</summary>
public static class SafetensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> (any device; copied to the CPU, contiguous) in the given order. With
    /// <paramref name="checksums"/>, every tensor's sha256 goes into the metadata (<see cref="SafetensorsFile.Checksums"/>),
    /// so a reader can tell a damaged tensor from a sound one.</summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        bool checksums = false)
    {
        var list = tensors.ToList();
        var header = new Dictionary<string, object>();
        if (checksums)
        {
            var sums = list.ToDictionary(x => x.Name, x => Sha256(x.Tensor));
            metadata = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { [SafetensorsFile.ChecksumKey] =
                JsonSerializer.Serialize(sums) };
        }
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, t) in list)
        {
            long size = t.numel() * t.ElementSize;
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = SafetensorsFile.DTypeName(t.dtype),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + size },
            };
            offset += size;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8;
        AtomicFile.Write(path, s =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            s.Write(len);
            s.Write(json);
            for (int i = json.Length; i < padded; i++) s.WriteByte((byte)' ');
            foreach (var (_, t) in list)
            {
                using var detached = t.detach();
                using var cpu = detached.cpu();
                using var contiguous = cpu.contiguous();
                if (contiguous.numel() == 0) continue;
                using var flat = contiguous.view(-1);
                long perChunk = Math.Max(1, SafetensorsFile.Chunk / contiguous.ElementSize);
                for (long start = 0; start < flat.numel(); start += perChunk)
                {
                    using var part = flat.narrow(0, start, Math.Min(perChunk, flat.numel() - start));
                    s.Write(part.bytes);
                }
            }
        });
    }

    /// <summary>The sha256 of a tensor's bytes as they are written (CPU, contiguous, little-endian).</summary>
    private static string Sha256(Tensor t)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var detached = t.detach();
        using var cpu = detached.cpu();
        using var contiguous = cpu.contiguous();
        if (contiguous.numel() > 0)
        {
            using var flat = contiguous.view(-1);
            long perChunk = Math.Max(1, SafetensorsFile.Chunk / contiguous.ElementSize);
            for (long start = 0; start < flat.numel(); start += perChunk)
            {
                using var part = flat.narrow(0, start, Math.Min(perChunk, flat.numel() - start));
                sha.AppendData(part.bytes);
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
