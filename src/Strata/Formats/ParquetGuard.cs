// A Parquet file is checked before Parquet.Net (6.1) reads any of it, because its Thrift code trusts what it reads:
// it skips an unknown field by recursing into nested lists without a depth limit (100,000 nested lists end the process
// with a stack overflow), counts through a list's declared length without consuming input for booleans (a list of
// 2^31 - 1 booleans in 2 KB never finishes), and builds the schema tree recursively from num_children (a chain 10,000
// deep overflows the stack too). So every Thrift struct it will decode is decoded here first, by a reader that bounds
// nesting and lengths: the footer (FileMetaData), then every page header of every column chunk, walked from the chunk's
// first page to its end. The schema must form a tree no deeper than MaxSchemaDepth whose node counts agree with the list.
// File layout: "PAR1", column chunks (pages: a PageHeader struct, then compressed_page_size bytes), FileMetaData,
// its length (uint32 LE), "PAR1" (https://parquet.apache.org/docs/file-format/).
using Strata.Util;

namespace Strata.Formats;

internal static class ParquetGuard
{
    /// <summary>Deepest schema tree accepted (nested groups); real data sets nest a handful of levels.</summary>
    public const int MaxSchemaDepth = 32;
    /// <summary>Bytes read at once for a page header (a header is a few dozen bytes, statistics included).</summary>
    private const int HeaderWindow = 1 << 20;
    private static ReadOnlySpan<byte> Magic => "PAR1"u8;

    /// <summary>Refuses, naming what is wrong, a file whose footer or page headers are not well-formed Thrift that fits
    /// the file, or whose schema is not a tree of bounded depth.</summary>
    public static void Check(string path)
    {
        using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        long length = s.Length;
        if (length < 12) throw new StrataException($"{path}: not a parquet file (too short)");
        var tail = new byte[8];
        s.Seek(-8, SeekOrigin.End);
        s.ReadExactly(tail);
        if (!tail.AsSpan(4).SequenceEqual(Magic)) throw new StrataException($"{path}: not a parquet file (no PAR1 at its end)");
        long footerLength = BitConverter.ToUInt32(tail, 0);
        if (footerLength == 0 || footerLength > length - 12) throw new StrataException($"{path}: its metadata length {footerLength} does not fit the file");
        var footer = new byte[footerLength];
        s.Seek(-8 - footerLength, SeekOrigin.End);
        s.ReadExactly(footer);
        var meta = Decode(footer, path, "metadata");
        CheckSchema(meta, path);
        long dataEnd = length - 8 - footerLength;
        foreach (var (row, column, start, end) in Chunks(meta, path))
        {
            if (start < 4 || end > dataEnd || end < start)
                throw new StrataException($"{path}: row group {row}, column {column}: its pages [{start}, {end}) are not inside the file's data");
            CheckPages(s, start, end, path, $"row group {row}, column {column}");
        }
    }

    private static ThriftCompact.Struct Decode(ReadOnlySpan<byte> bytes, string path, string what)
    {
        try { return ThriftCompact.ReadStruct(bytes, out _); }
        catch (FormatException e) { throw new StrataException($"{path}: damaged {what} ({e.Message})"); }
    }

    /// <summary>FileMetaData.schema (field 2) is the tree flattened depth first, each element's num_children (field 5)
    /// its number of children: the counts must describe exactly the elements listed, no deeper than the bound.</summary>
    private static void CheckSchema(ThriftCompact.Struct meta, string path)
    {
        if (meta.Field(2) is not ThriftCompact.List { Items.Count: > 0 } schema) throw new StrataException($"{path}: its metadata has no schema");
        var open = new Stack<long>();                                                   // children still expected at each open level
        for (int i = 0; i < schema.Items.Count; i++)
        {
            if (i > 0 && open.Count == 0) throw new StrataException($"{path}: schema element {i} lies outside the tree its root describes");
            if (schema.Items[i] is not ThriftCompact.Struct element) throw new StrataException($"{path}: schema element {i} is not a struct");
            long children = element.Field(5) is ThriftCompact.Int { Value: var n } ? n : 0;
            if (children < 0 || children > schema.Items.Count) throw new StrataException($"{path}: schema element {i} declares {children} children");
            if (open.Count > 0) open.Push(open.Pop() - 1);
            if (children > 0)
            {
                open.Push(children);
                if (open.Count > MaxSchemaDepth) throw new StrataException($"{path}: its schema nests more than {MaxSchemaDepth} levels deep");
            }
            while (open.Count > 0 && open.Peek() == 0) open.Pop();
        }
        if (open.Count > 0) throw new StrataException($"{path}: its schema declares more elements than it lists");
    }

    /// <summary>Every column chunk's pages: RowGroup (FileMetaData field 4) -> ColumnChunk (field 1) -> ColumnMetaData
    /// (field 3): data_page_offset (9), dictionary_page_offset (11), total_compressed_size (7).</summary>
    private static IEnumerable<(int Row, int Column, long Start, long End)> Chunks(ThriftCompact.Struct meta, string path)
    {
        if (meta.Field(4) is not ThriftCompact.List groups) yield break;
        for (int r = 0; r < groups.Items.Count; r++)
        {
            if (groups.Items[r] is not ThriftCompact.Struct group || group.Field(1) is not ThriftCompact.List columns)
                throw new StrataException($"{path}: row group {r} has no columns");
            for (int c = 0; c < columns.Items.Count; c++)
            {
                if (columns.Items[c] is not ThriftCompact.Struct chunk || chunk.Field(3) is not ThriftCompact.Struct m) continue;   // (in another file)
                long data = m.Field(9) is ThriftCompact.Int d ? d.Value : -1, size = m.Field(7) is ThriftCompact.Int t ? t.Value : -1;
                long dictionary = m.Field(11) is ThriftCompact.Int x && x.Value > 0 ? x.Value : data;
                if (data < 0 || size < 0) throw new StrataException($"{path}: row group {r}, column {c}: no page offset or size");
                long start = Math.Min(data, dictionary);
                yield return (r, c, start, start + size);
            }
        }
    }

    /// <summary>Walks the pages of [start, end): each a PageHeader struct whose compressed_page_size (field 3) bytes follow.</summary>
    private static void CheckPages(FileStream s, long start, long end, string path, string where)
    {
        var window = new byte[(int)Math.Min(HeaderWindow, Math.Max(0, end - start))];
        for (long pos = start; pos < end;)
        {
            int n = (int)Math.Min(window.Length, end - pos);
            s.Seek(pos, SeekOrigin.Begin);
            s.ReadExactly(window, 0, n);
            ThriftCompact.Struct header;
            int used;
            try { header = ThriftCompact.ReadStruct(window.AsSpan(0, n), out used); }
            catch (FormatException e) { throw new StrataException($"{path}: {where}: damaged page header at byte {pos} ({e.Message})"); }
            long size = header.Field(3) is ThriftCompact.Int { Value: var v } ? v : -1;
            if (size < 0 || size > end - pos - used)
                throw new StrataException($"{path}: {where}: the page at byte {pos} declares {size} bytes, {end - pos - used} remain in its column chunk");
            pos += used + size;
        }
    }
}
