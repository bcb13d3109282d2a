using Strata.Data;
using Strata.Formats;
using Strata.Util;
using Xunit;
using static Strata.Formats.ThriftCompact;

namespace Strata.Tests;

/// <summary>Damaged Parquet files that ended the process (stack overflows in Parquet.Net's and Strata's recursions) or
/// never finished (lists of 2^31 - 1 booleans) get one clear error, at the depths and lengths that did the damage. The
/// files are a real one written by Parquet.Net, its footer or first page header rewritten with a Thrift writer.</summary>
public class ParquetGuardTests
{
    private sealed class Row { public string text { get; set; } = ""; }

    private static readonly Lazy<byte[]> Valid = new(() =>
    {
        var path = Path.Combine(TestPaths.TempDir(), "valid.parquet");
        Parquet.Serialization.ParquetSerializer.SerializeAsync(Enumerable.Range(0, 20).Select(i => new Row { text = $"document {i}" }), path)
            .GetAwaiter().GetResult();
        return File.ReadAllBytes(path);
    });

    /// <summary>The valid file with its metadata and first page header passed through the given edits.</summary>
    private static string Rewrite(Func<Struct, Struct>? footer = null, Func<Struct, Struct>? firstPage = null)
    {
        var b = Valid.Value;
        int footerLength = BitConverter.ToInt32(b, b.Length - 8), footerStart = b.Length - 8 - footerLength;
        var meta = ReadStruct(b.AsSpan(footerStart, footerLength), out _);
        var chunk = (Struct)((Struct)((Struct)((List)((Struct)((List)meta.Field(4)!).Items[0]).Field(1)!).Items[0]).Field(3)!);
        long start = new[] { ((Int)chunk.Field(9)!).Value, chunk.Field(11) is Int d ? d.Value : long.MaxValue }.Min();
        var header = ReadStruct(b.AsSpan((int)start), out int used);
        var newHeader = Write(firstPage?.Invoke(header) ?? header, b.AsSpan((int)start));
        long delta = newHeader.Length - used;
        chunk.Fields[7] = new Int(((Int)chunk.Field(7)!).Value + delta, 6);                       // total_compressed_size
        if (chunk.Field(9) is Int data && data.Value > start) chunk.Fields[9] = new Int(data.Value + delta, 6);
        var newFooter = Write(footer?.Invoke(meta) ?? meta, b.AsSpan(footerStart, footerLength));
        using var o = new MemoryStream();
        o.Write(b, 0, (int)start);
        o.Write(newHeader);
        o.Write(b, (int)start + used, footerStart - (int)start - used);
        o.Write(newFooter);
        o.Write(BitConverter.GetBytes(newFooter.Length));
        o.Write("PAR1"u8);
        var path = Path.Combine(TestPaths.TempDir(), "hostile.parquet");
        File.WriteAllBytes(path, o.ToArray());
        return path;
    }

    /// <summary>Lists nested <paramref name="Depth"/> deep (an unknown field's value; written without recursion).</summary>
    private sealed record Nested(int Depth) : Value;

    /// <summary>A list that declares <paramref name="n"/> booleans and holds none (written by hand below).</summary>
    private sealed record Declared(long N, int Copies) : Value;

    private static Struct With(Struct s, short field, Value v)
    {
        var fields = new Dictionary<short, Value>(s.Fields) { [field] = v };
        return new Struct(fields);
    }

    private static void AssertRefused(string path, string said)
    {
        var e = Assert.Throws<StrataException>(() => ParquetGuard.Check(path));
        Assert.Contains(said, e.Message);
        // the readers that feed Parquet.Net refuse it the same way, before it reads a byte
        Assert.Contains(said, Assert.Throws<StrataException>(() =>
            new DocumentReader(new ReadOptions()).Read(0, path, "hostile.parquet", true).ToList()).Message);
    }

    [Fact]
    public void The_valid_file_passes_and_reads()
    {
        var path = Rewrite();
        ParquetGuard.Check(path);
        Assert.Equal(20, new DocumentReader(new ReadOptions()).Read(0, path, "x.parquet", true).Count());
    }

    [Fact]
    public void Lists_nested_100000_deep_in_the_metadata_are_refused() =>
        AssertRefused(Rewrite(footer: m => With(m, 99, new Nested(100_000))), "nested more than 64 deep");

    [Fact]
    public void A_schema_chain_10000_deep_is_refused()
    {
        var path = Rewrite(footer: m =>
        {
            var schema = (List)m.Field(2)!;
            var leaf = (Struct)schema.Items[^1];
            var chain = Enumerable.Range(0, 10_000).Select(_ => (Value)With((Struct)schema.Items[0], 5, new Int(1, 5))).Append(leaf).ToList();
            return With(m, 2, new List(chain, 12));
        });
        AssertRefused(path, "nests more than 32 levels deep");
    }

    [Fact]
    public void A_schema_root_with_minus_one_children_is_refused() =>
        AssertRefused(Rewrite(footer: m =>
        {
            var schema = (List)m.Field(2)!;
            return With(m, 2, new List([With((Struct)schema.Items[0], 5, new Int(-1, 5)), .. schema.Items.Skip(1)], 12));
        }), "declares -1 children");

    [Fact]
    public void A_page_header_with_lists_nested_100000_deep_is_refused() =>
        AssertRefused(Rewrite(firstPage: h => With(h, 99, new Nested(100_000))), "damaged page header");

    [Theory]
    [InlineData(1)]                                                                          // one list of 2^31 - 1 booleans
    [InlineData(100_000)]                                                                    // 100,000 of them in a list
    public void Page_headers_declaring_lists_of_two_to_the_31_booleans_are_refused(int copies) =>
        AssertRefused(Rewrite(firstPage: h => With(h, 99, new Declared(int.MaxValue, copies))), "damaged page header");

    [Fact]
    public void A_page_larger_than_its_chunk_is_refused() =>
        AssertRefused(Rewrite(firstPage: h => With(h, 3, new Int(1 << 30, 5))), "declares 1073741824 bytes");

    [Fact]
    public void A_column_Parquet_Net_cannot_decode_is_refused_in_one_line()
    {
        var path = Rewrite(footer: m =>
        {
            // the text column (after the root) without its physical type: neither a column nor a group to Parquet.Net
            var schema = (List)m.Field(2)!;
            var untyped = new Struct(((Struct)schema.Items[1]).Fields.Where(f => f.Key != 1).ToDictionary());
            return With(m, 2, new List([schema.Items[0], untyped, .. schema.Items.Skip(2)], 12));
        });
        ParquetGuard.Check(path);                                                            // well-formed Thrift, a tree
        var e = Assert.Throws<StrataException>(() => new DocumentReader(new ReadOptions()).Read(0, path, "hostile.parquet", true).ToList());
        Assert.Contains("its schema is not readable", e.Message);
    }

    /// <summary>Thrift compact writing, the inverse of ThriftCompact's reading (binaries copied from the source).</summary>
    private static byte[] Write(Struct s, ReadOnlySpan<byte> source)
    {
        var o = new List<byte>();
        WriteStruct(o, s, source.ToArray());
        return o.ToArray();
    }

    private static void WriteStruct(List<byte> o, Struct s, byte[] src)
    {
        short last = 0;
        foreach (var (id, v) in s.Fields.OrderBy(f => f.Key))
        {
            int type = v is Int { Type: 1 } b ? (b.Value == 1 ? 1 : 2) : TypeOf(v);
            if (id > last && id - last <= 15) o.Add((byte)((id - last) << 4 | type));
            else
            {
                o.Add((byte)type);
                VarInt(o, ZigZag(id));
            }
            last = id;
            if (type is not (1 or 2)) WriteValue(o, v, src);
        }
        o.Add(0);
    }

    private static int TypeOf(Value v) => v switch
    {
        Int i => i.Type, Binary b => b.Type, ThriftCompact.Double => 7, List or Declared or Nested => 9, Map => 11, Struct => 12,
        _ => throw new ArgumentException(),
    };

    private static void WriteValue(List<byte> o, Value v, byte[] src)
    {
        switch (v)
        {
            case Int { Type: 1 } b: o.Add((byte)(b.Value == 1 ? 1 : 2)); break;
            case Int { Type: 3 } b: o.Add((byte)b.Value); break;
            case Int i: VarInt(o, ZigZag(i.Value)); break;
            case ThriftCompact.Double d: o.AddRange(BitConverter.GetBytes(d.Value)); break;
            case Binary { Type: 13 } u: o.AddRange(src.AsSpan(u.Offset, 16).ToArray()); break;
            case Binary b:
                VarInt(o, (ulong)b.Length);
                o.AddRange(src.AsSpan(b.Offset, b.Length).ToArray());
                break;
            case Nested n:
                for (int i = 1; i < n.Depth; i++) o.Add(0x19);                              // a list of one list ...
                o.Add(0x03);                                                                 // ... down to an empty list of bytes
                break;
            case Declared d when d.Copies == 1:
                o.Add(0xF1);                                                                 // a list of booleans, its size next ...
                VarInt(o, (ulong)d.N);                                                       // ... and no elements at all
                break;
            case Declared d:
                o.Add(0xF9);
                VarInt(o, (ulong)d.Copies);
                for (int i = 0; i < d.Copies; i++) { o.Add(0xF1); VarInt(o, (ulong)d.N); }
                break;
            case List l:
                if (l.Items.Count < 15) o.Add((byte)(l.Items.Count << 4 | l.ElementType));
                else
                {
                    o.Add((byte)(0xF0 | l.ElementType));
                    VarInt(o, (ulong)l.Items.Count);
                }
                foreach (var item in l.Items) WriteValue(o, item, src);
                break;
            case Map m:
                VarInt(o, (ulong)m.Entries.Count);
                if (m.Entries.Count > 0) o.Add((byte)(m.KeyType << 4 | m.ValueType));
                foreach (var (k, val) in m.Entries) { WriteValue(o, k, src); WriteValue(o, val, src); }
                break;
            case Struct s: WriteStruct(o, s, src); break;
        }
    }

    private static ulong ZigZag(long n) => (ulong)((n << 1) ^ (n >> 63));

    private static void VarInt(List<byte> o, ulong n)
    {
        while (n >= 0x80) { o.Add((byte)(n | 0x80)); n >>= 7; }
        o.Add((byte)n);
    }
}
