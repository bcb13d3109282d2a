// TensorBoard event files without TensorFlow: TFRecord framing (uint64 length, masked CRC-32C of the length, the
// bytes, masked CRC-32C of the bytes) around hand-encoded Event protobufs:
//   Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
using System.Buffers.Binary;
using System.Text;

namespace Strata.Training;

internal sealed class TensorBoardWriter : IDisposable
{
    private readonly FileStream _stream;

    public TensorBoardWriter(string dir)
    {
        Directory.CreateDirectory(dir);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var name = $"events.out.tfevents.{now}.{Environment.MachineName}.{Environment.ProcessId}.{Guid.NewGuid():N}.strata";
        Path = System.IO.Path.Combine(dir, name);
        _stream = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        var ev = new List<byte>();
        WallTime(ev);
        Tag(ev, 3, 2);
        Bytes(ev, Encoding.UTF8.GetBytes("brain.Event:2"));
        Record(ev.ToArray());
    }

    public string Path { get; }

    public void Scalar(string tag, long step, float value)
    {
        var v = new List<byte>();
        Tag(v, 1, 2); Bytes(v, Encoding.UTF8.GetBytes(tag));
        Tag(v, 2, 5); v.AddRange(BitConverter.GetBytes(value));
        var summary = new List<byte>();
        Tag(summary, 1, 2); Bytes(summary, v.ToArray());
        var ev = new List<byte>();
        WallTime(ev);
        Tag(ev, 2, 0); Varint(ev, (ulong)step);
        Tag(ev, 5, 2); Bytes(ev, summary.ToArray());
        Record(ev.ToArray());
    }

    public void Flush() => _stream.Flush();

    private static void WallTime(List<byte> ev)
    {
        Tag(ev, 1, 1);
        ev.AddRange(BitConverter.GetBytes(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0));
    }

    private static void Tag(List<byte> b, int field, int wire) => Varint(b, (ulong)(field << 3 | wire));
    private static void Bytes(List<byte> b, byte[] data) { Varint(b, (ulong)data.Length); b.AddRange(data); }
    private static void Varint(List<byte> b, ulong v)
    {
        while (v >= 0x80) { b.Add((byte)(v | 0x80)); v >>= 7; }
        b.Add((byte)v);
    }

    private void Record(byte[] data)
    {
        Span<byte> head = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(head, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head[8..], MaskedCrc(head[..8]));
        _stream.Write(head);
        _stream.Write(data);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(tail, MaskedCrc(data));
        _stream.Write(tail);
    }

    public static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8;
    }

    private static readonly uint[] Table = MakeTable();
    private static uint[] MakeTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78 ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>CRC-32C (Castagnoli), as TFRecord uses.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc ^ 0xFFFFFFFF;
    }

    public void Dispose() => _stream.Dispose();
}
