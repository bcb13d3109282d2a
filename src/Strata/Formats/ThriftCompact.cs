// Thrift's compact protocol (https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md), read
// into a small tree with every limit a hostile file could abuse checked: containers nest at most MaxDepth deep, a list
// or map declares no more elements than the bytes left could hold, a binary value fits in them. Decoding is linear in
// the input. Parquet's metadata and page headers are read this way before Parquet.Net reads them (ParquetGuard).
namespace Strata.Formats;

internal static class ThriftCompact
{
    public const int MaxDepth = 64;

    internal abstract record Value;
    internal sealed record Struct(Dictionary<short, Value> Fields) : Value
    {
        public Value? Field(short id) => Fields.GetValueOrDefault(id);
    }
    internal sealed record List(List<Value> Items, int ElementType) : Value;
    internal sealed record Map(List<(Value Key, Value Value)> Entries, int KeyType, int ValueType) : Value;
    /// <summary>byte (type 3), i16, i32, i64 (4, 5, 6; zigzag-decoded), and booleans (1) as 0 / 1.</summary>
    internal sealed record Int(long Value, int Type) : Value;
    /// <summary>Bytes of the input (binary, type 8; uuid, type 13).</summary>
    internal sealed record Binary(int Offset, int Length, int Type = 8) : Value;
    internal sealed record Double(double Value) : Value;

    /// <summary>A struct at the start of <paramref name="bytes"/>, and the bytes it took.</summary>
    /// <exception cref="FormatException">the bytes are not a well-formed struct within the limits</exception>
    public static Struct ReadStruct(ReadOnlySpan<byte> bytes, out int used)
    {
        var r = new Reader(bytes);
        var s = r.Struct(0);
        used = r.Pos;
        return s;
    }

    private ref struct Reader(ReadOnlySpan<byte> b)
    {
        private readonly ReadOnlySpan<byte> _b = b;
        public int Pos;

        private int Left => _b.Length - Pos;

        private byte Byte() => Pos < _b.Length ? _b[Pos++] : throw new FormatException("it ends in the middle of a value");

        public Struct Struct(int depth)
        {
            if (depth > MaxDepth) throw new FormatException($"values nested more than {MaxDepth} deep");
            var fields = new Dictionary<short, Value>();
            short last = 0;
            while (true)
            {
                byte header = Byte();
                if (header == 0) return new Struct(fields);                              // STOP
                int delta = header >> 4, type = header & 0x0f;
                long id = delta == 0 ? ZigZag(VarInt()) : last + delta;
                if (id is < short.MinValue or > short.MaxValue) throw new FormatException($"field id {id}");
                last = (short)id;
                fields[last] = type is 1 or 2 ? new Int(type == 1 ? 1 : 0, 1) : Read(type, depth + 1);
            }
        }

        private Value Read(int type, int depth)
        {
            if (depth > MaxDepth) throw new FormatException($"values nested more than {MaxDepth} deep");
            switch (type)
            {
                case 1 or 2: return new Int(Byte() == 1 ? 1 : 0, 1);                        // a boolean element of a list
                case 3: return new Int((sbyte)Byte(), 3);
                case 4 or 5 or 6: return new Int(ZigZag(VarInt()), type);
                case 7:
                    Need(8);
                    var d = BitConverter.ToDouble(_b.Slice(Pos, 8));
                    Pos += 8;
                    return new Double(d);
                case 8:
                {
                    long n = VarInt();
                    Need(n);
                    var v = new Binary(Pos, (int)n);
                    Pos += (int)n;
                    return v;
                }
                case 9 or 10:                                                              // list, set
                {
                    byte head = Byte();
                    long n = head >> 4 == 15 ? VarInt() : head >> 4;
                    if (n > Left) throw new FormatException($"a list of {n} elements in {Left} bytes");
                    var items = new List<Value>((int)n);
                    for (long i = 0; i < n; i++) items.Add(Read(head & 0x0f, depth + 1));
                    return new List(items, head & 0x0f);
                }
                case 11:                                                                   // map
                {
                    long n = VarInt();
                    var entries = new List<(Value, Value)>();
                    if (n == 0) return new Map(entries, 0, 0);
                    byte types = Byte();
                    if (2 * n > Left) throw new FormatException($"a map of {n} entries in {Left} bytes");
                    for (long i = 0; i < n; i++) entries.Add((Read(types >> 4, depth + 1), Read(types & 0x0f, depth + 1)));
                    return new Map(entries, types >> 4, types & 0x0f);
                }
                case 12: return Struct(depth);
                case 13:
                    Need(16);
                    Pos += 16;
                    return new Binary(Pos - 16, 16, 13);                                   // uuid
                default: throw new FormatException($"unknown value type {type}");
            }
        }

        private void Need(long n)
        {
            if (n < 0 || n > Left) throw new FormatException($"a value of {n} bytes in {Left}");
        }

        private long VarInt()
        {
            long result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                byte x = Byte();
                result |= (long)(x & 0x7f) << shift;
                if ((x & 0x80) == 0) return result;
            }
            throw new FormatException("a variable-length integer longer than 10 bytes");
        }

        private static long ZigZag(long n) => (long)((ulong)n >> 1) ^ -(n & 1);
    }
}
