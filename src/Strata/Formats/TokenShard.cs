// Token shard file, format version 1 (little-endian):
//   0  8 bytes  magic "STRTOKEN"
//   8  int32    format version (1)
//  12  int32    vocab size
//  16  int32    bytes per token: 2 (uint16, vocab <= 65,536) or 4 (uint32)
//  20  int32    reserved, 0
//  24  int64    token count N
//  32  N tokens
// The reader checks magic, version, width and that the file is exactly 32 + N * width bytes.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.IO.MemoryMappedFiles;
using Strata.Util;

namespace Strata.Formats;

internal sealed class TokenShard : IDisposable
{
    public const int HeaderSize = 32, Version = 1;
    private static ReadOnlySpan<byte> Magic => "STRTOKEN"u8;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;

    public string Path { get; }
    public int VocabSize { get; }
    public int TokenWidth { get; }
    public long Count { get; }

    private TokenShard(string path, int vocab, int width, long count, MemoryMappedFile? map, MemoryMappedViewAccessor? view)
    {
        (Path, VocabSize, TokenWidth, Count, _map, _view) = (path, vocab, width, count, map, view);
    }

    public static int WidthFor(int vocabSize) => vocabSize <= 65536 ? 2 : 4;

    public static void Write(string path, int vocabSize, IReadOnlyList<int> tokens)
    {
        using var w = new TokenShardWriter(path, vocabSize);
        w.Append(tokens as int[] ?? tokens.ToArray());
        w.Commit();
    }

    /// <summary>The 32-byte header for <paramref name="count"/> tokens of a vocabulary of <paramref name="vocabSize"/>.</summary>
    internal static byte[] Header(int vocabSize, long count)
    {
        var header = new byte[HeaderSize];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), Version);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), vocabSize);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), WidthFor(vocabSize));
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(24), count);
        return header;
    }

    /// <summary>sha256 (hex) of a shard's tokens as stored (the bytes after the header), read back from the file.</summary>
    public string ContentHash() => Scan().Sha256;

    /// <summary>One pass over the tokens: the sha256 of their bytes (as the manifest records it) and the largest id.</summary>
    public (string Sha256, int MaxId) Scan()
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var fs = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        fs.Seek(HeaderSize, SeekOrigin.Begin);
        var buffer = new byte[1 << 20];
        int n, carry = 0, max = -1;
        while ((n = fs.Read(buffer, carry, buffer.Length - carry)) > 0 || carry > 0)
        {
            if (n == 0) throw new StrataException($"{Path}: ends in the middle of a token");
            sha.AppendData(buffer, carry, n);
            int filled = carry + n, whole = filled - filled % TokenWidth;
            max = Math.Max(max, TokenWidth == 2 ? Max(MemoryMarshal.Cast<byte, ushort>(buffer.AsSpan(0, whole)))
                : Max(MemoryMarshal.Cast<byte, uint>(buffer.AsSpan(0, whole))));
            buffer.AsSpan(whole, filled - whole).CopyTo(buffer);
            carry = filled - whole;
        }
        return (Convert.ToHexStringLower(sha.GetHashAndReset()), max);
    }

    /// <summary>The largest value, -1 for none; a uint32 id past int.MaxValue counts as int.MaxValue (past any vocabulary).</summary>
    private static int Max<T>(ReadOnlySpan<T> values) where T : unmanaged, System.Numerics.INumber<T>
    {
        if (values.IsEmpty) return -1;
        var best = System.Numerics.Vector<T>.Zero;
        int i = 0;
        for (; i + System.Numerics.Vector<T>.Count <= values.Length; i += System.Numerics.Vector<T>.Count)
            best = System.Numerics.Vector.Max(best, new System.Numerics.Vector<T>(values[i..]));
        T m = T.Zero;
        for (int k = 0; k < System.Numerics.Vector<T>.Count; k++) m = T.Max(m, best[k]);
        for (; i < values.Length; i++) m = T.Max(m, values[i]);
        return (int)Math.Min(long.CreateTruncating(m), int.MaxValue);
    }

    public static TokenShard Open(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: token shard not found (make it with 'strata data prepare')");
        long length;
        var header = new byte[HeaderSize];
        using (var fs = File.OpenRead(path))
        {
            length = fs.Length;                                                  // the file's, also through a link
            if (fs.Read(header) != HeaderSize || !header.AsSpan(0, 8).SequenceEqual(Magic))
                throw new StrataException($"{path}: not a Strata token shard (bad magic); re-run 'strata data prepare'");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
        if (version != Version) throw new StrataException($"{path}: shard format version {version}, this Strata reads {Version}; re-run 'strata data prepare'");
        int vocab = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
        int width = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16));
        long count = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(24));
        if (vocab <= 0 || width != WidthFor(vocab)) throw new StrataException(
            $"{path}: header says vocab {vocab} with {width}-byte tokens, which do not agree");
        if (count < 0 || length != HeaderSize + count * width)
            throw new StrataException(
                $"{path}: file is {length} bytes, the header promises {HeaderSize} + {count} x {width}; the shard is truncated or corrupt");
        if (count == 0) return new TokenShard(path, vocab, width, 0, null, null);
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        return new TokenShard(path, vocab, width, count, map, view);
    }

    /// <summary>Copies tokens [offset, offset + dest.Length) into <paramref name="dest"/>.</summary>
    public void Read(long offset, Span<long> dest)
    {
        if (offset < 0 || offset + dest.Length > Count) throw new ArgumentOutOfRangeException(nameof(offset));
        long pos = HeaderSize + offset * TokenWidth;
        if (TokenWidth == 2)
            for (int i = 0; i < dest.Length; i++) dest[i] = _view!.ReadUInt16(pos + 2L * i);
        else
            for (int i = 0; i < dest.Length; i++) dest[i] = _view!.ReadUInt32(pos + 4L * i);
    }

    public int[] ReadAll()
    {
        var all = new long[Count];
        Read(0, all);
        return all.Select(x => (int)x).ToArray();
    }

    public void Dispose()
    {
        _view?.Dispose();
        _map?.Dispose();
    }
}

/// <summary>Writes a shard as tokens arrive: into a temporary sibling (AtomicFile's naming, so a crash leaves nothing
/// that looks like a shard), hashing the token bytes as they go; <see cref="Commit"/> writes the final count into the
/// header and renames the file into place.</summary>
internal sealed class TokenShardWriter : IDisposable
{
    private readonly FileStream _stream;
    private readonly System.Security.Cryptography.IncrementalHash _sha = System.Security.Cryptography.IncrementalHash.CreateHash(
        System.Security.Cryptography.HashAlgorithmName.SHA256);
    private readonly int _vocab, _width;
    private readonly byte[] _buffer = new byte[1 << 20];
    private int _fill;
    private bool _committed;

    public TokenShardWriter(string path, int vocabSize)
    {
        Path = System.IO.Path.GetFullPath(path);
        TempPath = Path + AtomicFile.TempMarker + $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        (_vocab, _width) = (vocabSize, TokenShard.WidthFor(vocabSize));
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _stream = new FileStream(TempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        _stream.Write(TokenShard.Header(vocabSize, 0));
    }

    public string Path { get; }
    private string TempPath { get; }
    public long Count { get; private set; }

    /// <summary>Appends tokens, all or none: a token outside the vocabulary is an error before any is written.</summary>
    public void Append(ReadOnlySpan<int> tokens)
    {
        int outside = tokens.IndexOfAnyExceptInRange(0, _vocab - 1);
        if (outside >= 0) throw new ArgumentOutOfRangeException(nameof(tokens), $"token {tokens[outside]} outside vocab {_vocab}");
        Count += tokens.Length;
        while (tokens.Length > 0)
        {
            int n = Math.Min(tokens.Length, (_buffer.Length - _fill) / _width);
            var into = _buffer.AsSpan(_fill, n * _width);
            if (_width == 2) Narrow(tokens[..n], MemoryMarshal.Cast<byte, ushort>(into));
            else tokens[..n].CopyTo(MemoryMarshal.Cast<byte, int>(into));
            if (!BitConverter.IsLittleEndian && _width == 2) BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, ushort>(into),
                MemoryMarshal.Cast<byte, ushort>(into));
            if (!BitConverter.IsLittleEndian && _width == 4) BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, int>(into),
                MemoryMarshal.Cast<byte, int>(into));
            _fill += n * _width;
            tokens = tokens[n..];
            if (_fill == _buffer.Length) Flush();
        }
    }

    /// <summary>Ids below 65,536 to 16 bits each, 16 at a time.</summary>
    private static void Narrow(ReadOnlySpan<int> from, Span<ushort> to)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 16 <= from.Length; i += 16)
                Vector256.Narrow(Vector256.Create(from.Slice(i, 8)).AsUInt32(), Vector256.Create(from.Slice(i + 8, 8)).AsUInt32()).CopyTo(to[i..]);
        for (; i < from.Length; i++) to[i] = (ushort)from[i];
    }

    private void Flush()
    {
        _stream.Write(_buffer, 0, _fill);
        _sha.AppendData(_buffer, 0, _fill);
        _fill = 0;
    }

    /// <summary>Finishes the shard (count in the header, flushed to disk, renamed into place); returns the sha256 of its tokens.</summary>
    public string Commit()
    {
        Flush();
        _stream.Seek(0, SeekOrigin.Begin);
        _stream.Write(TokenShard.Header(_vocab, Count));
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        KillPoint.Here("shard.before-rename");
        File.Move(TempPath, Path, overwrite: true);
        _committed = true;
        return Convert.ToHexStringLower(_sha.GetHashAndReset());
    }

    public void Dispose()
    {
        _stream.Dispose();
        _sha.Dispose();
        if (!_committed && File.Exists(TempPath)) File.Delete(TempPath);
    }
}
