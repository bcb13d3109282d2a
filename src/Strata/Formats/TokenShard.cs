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
using System.IO.MemoryMappedFiles;
using Strata.Util;

namespace Strata.Formats;

public sealed class TokenShard : IDisposable
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
        int width = WidthFor(vocabSize);
        AtomicFile.Write(path, s =>
        {
            var header = new byte[HeaderSize];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), Version);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), vocabSize);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(16), width);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(24), tokens.Count);
            s.Write(header);
            var buf = new byte[1 << 16];
            int n = 0;
            foreach (var t in tokens)
            {
                if ((uint)t >= (uint)vocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token {t} outside vocab {vocabSize}");
                if (width == 2) BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(n), (ushort)t);
                else BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(n), (uint)t);
                n += width;
                if (n == buf.Length) { s.Write(buf, 0, n); n = 0; }
            }
            s.Write(buf, 0, n);
        });
    }

    public static TokenShard Open(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: token shard not found (make it with 'strata data prepare')");
        long length = new FileInfo(path).Length;
        var header = new byte[HeaderSize];
        using (var fs = File.OpenRead(path))
        {
            if (fs.Read(header) != HeaderSize || !header.AsSpan(0, 8).SequenceEqual(Magic))
                throw new StrataException($"{path}: not a Strata token shard (bad magic); re-run 'strata data prepare'");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
        if (version != Version) throw new StrataException($"{path}: shard format version {version}, this Strata reads {Version}; re-run 'strata data prepare'");
        int vocab = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(12));
        int width = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(16));
        long count = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(24));
        if (vocab <= 0 || width != WidthFor(vocab)) throw new StrataException($"{path}: header says vocab {vocab} with {width}-byte tokens, which do not agree");
        if (count < 0 || length != HeaderSize + count * width)
            throw new StrataException($"{path}: file is {length} bytes, the header promises {HeaderSize} + {count} x {width}; the shard is truncated or corrupt");
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
