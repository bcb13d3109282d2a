// A Parquet file ends with its metadata, a Thrift struct in the compact protocol, its length (int32 LE) and "PAR1".
// Parquet.Net (6.1) skips unknown fields by counting through lists without consuming input for boolean elements and by
// seeking past the end for bytes, so a damaged length makes it loop for minutes on a file of a few KB. This walk of the
// same struct checks that every list, map and string fits in the bytes that remain and that nothing nests too deep,
// so that Parquet.Net only ever sees metadata it will get through in time proportional to its size.
// Compact protocol: https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md
using Strata.Util;

namespace Strata.Formats;

internal static class ParquetFooter
{
    private const int MaxDepth = 64;
    private static ReadOnlySpan<byte> Magic => "PAR1"u8;

    /// <summary>Refuses a file whose footer is not a well-formed Thrift compact struct that fits in it.</summary>
    public static void Check(string path)
    {
        using var s = File.OpenRead(path);
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
        int pos = 0;
        try { Struct(footer, ref pos, 0); }
        catch (IndexOutOfRangeException) { throw new StrataException($"{path}: its metadata ends in the middle of a value"); }
        catch (FormatException e) { throw new StrataException($"{path}: damaged metadata ({e.Message})"); }
    }

    private static void Struct(byte[] b, ref int pos, int depth)
    {
        if (depth > MaxDepth) throw new FormatException($"structs nested more than {MaxDepth} deep");
        while (true)
        {
            byte header = b[pos++];
            if (header == 0) return;                                                     // STOP
            if (header >> 4 == 0) VarInt(b, ref pos);                                     // a field id that is not a delta
            Value(b, ref pos, header & 0x0f, depth, inList: false);
        }
    }

    private static void Value(byte[] b, ref int pos, int type, int depth, bool inList)
    {
        switch (type)
        {
            case 1 or 2: if (inList) pos++; break;                                       // booleans: in the field header, one byte in a list
            case 3: pos++; break;                                                        // byte
            case 4 or 5 or 6: VarInt(b, ref pos); break;                                 // i16, i32, i64
            case 7: Skip(b, ref pos, 8); break;                                          // double
            case 8: Skip(b, ref pos, VarInt(b, ref pos)); break;                         // binary
            case 9 or 10:                                                                // list, set
            {
                byte head = b[pos++];
                long n = head >> 4 == 15 ? VarInt(b, ref pos) : head >> 4;
                if (n > b.Length - pos) throw new FormatException($"a list of {n} elements in {b.Length - pos} bytes");
                for (long i = 0; i < n; i++) Value(b, ref pos, head & 0x0f, depth + 1, inList: true);
                break;
            }
            case 11:                                                                     // map
            {
                long n = VarInt(b, ref pos);
                if (n == 0) break;
                byte types = b[pos++];
                if (2 * n > b.Length - pos) throw new FormatException($"a map of {n} entries in {b.Length - pos} bytes");
                for (long i = 0; i < n; i++)
                {
                    Value(b, ref pos, types >> 4, depth + 1, inList: true);
                    Value(b, ref pos, types & 0x0f, depth + 1, inList: true);
                }
                break;
            }
            case 12: Struct(b, ref pos, depth + 1); break;
            case 13: Skip(b, ref pos, 16); break;                                        // uuid
            default: throw new FormatException($"unknown value type {type}");
        }
        if (pos > b.Length) throw new IndexOutOfRangeException();
    }

    private static long VarInt(byte[] b, ref int pos)
    {
        long result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte x = b[pos++];
            result |= (long)(x & 0x7f) << shift;
            if ((x & 0x80) == 0) return result;
        }
        throw new FormatException("a variable-length integer longer than 10 bytes");
    }

    private static void Skip(byte[] b, ref int pos, long n)
    {
        if (n < 0 || n > b.Length - pos) throw new FormatException($"a value of {n} bytes in {b.Length - pos}");
        pos += (int)n;
    }
}
