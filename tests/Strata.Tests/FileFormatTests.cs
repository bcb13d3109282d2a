using Strata.Formats;
using System.Buffers.Binary;
using System.Text;
using Strata.Interop;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class FileFormatTests
{
    private static byte[] File(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    private static string Save(byte[] bytes)
    {
        var path = Path.Combine(TestPaths.TempDir(), "x.safetensors");
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Safetensors_written_byte_by_byte_from_the_specification_is_read()
    {
        var data = new byte[8 + 4];
        BinaryPrimitives.WriteSingleLittleEndian(data, 1.5f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), -2f);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(8), 7);
        const string header = """{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},""" +
                              """ "b":{"dtype":"I32","shape":[1,1],"data_offsets":[8,12]}}""";
        var path = Save(File(header, data));
        using var f = new SafetensorsFile(path);
        Assert.Equal("v", f.Metadata["k"]);
        using var a = f.Read("a");
        Assert.Equal(new[] { 1.5f, -2f }, a.data<float>().ToArray());
        using var b = f.Read("b");
        Assert.Equal([1L, 1], b.shape);
        Assert.Equal(7, b.item<int>());
    }

    [Fact]
    public void Tensors_larger_than_one_piece_are_written_and_read_in_pieces()
    {
        var saved = Strata.Formats.SafetensorsFile.Chunk;
        Strata.Formats.SafetensorsFile.Chunk = 1000;                                    // bytes: a [300, 16] float32 table is 20 pieces
        try
        {
            var path = Path.Combine(TestPaths.TempDir(), "pieces.safetensors");
            using var table = torch.randn(300, 16);
            using var ids = Scalars.Arange(0, 77, ScalarType.Int64);
            Strata.Formats.SafetensorsWriter.Write(path, [("table", table), ("ids", ids)]);
            using var file = new Strata.Formats.SafetensorsFile(path);
            using var t = file.Read("table");
            using var i = file.Read("ids");
            Assert.True(t.equal(table).all().item<bool>());
            Assert.True(i.equal(ids).all().item<bool>());
        }
        finally { Strata.Formats.SafetensorsFile.Chunk = saved; }
    }

    [Fact]
    public void Safetensors_written_here_round_trips_and_pads_its_header()
    {
        var path = Path.Combine(TestPaths.TempDir(), "y.safetensors");
        using var x = Scalars.Arange(0, 12, ScalarType.Float32).view(3, 4);
        using var y = torch.tensor(new long[] { 3L << 30 });
        SafetensorsWriter.Write(path, [("x", x), ("y", y)], new Dictionary<string, string> { ["m"] = "1" });
        var raw = System.IO.File.ReadAllBytes(path);
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(raw) % 8);
        using var f = new SafetensorsFile(path);
        using var x2 = f.Read("x");
        Assert.Equal(x.data<float>().ToArray(), x2.data<float>().ToArray());
        Assert.Equal(3L << 30, f.Read("y").item<long>());
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "lie outside")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "overlap")]
    [InlineData("""{"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}""", 8, "unknown dtype")]
    [InlineData("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "expected 12")]
    [InlineData("""{"a":""", 8, "not valid UTF-8 JSON")]
    public void Malformed_safetensors_is_refused(string header, int dataBytes, string message)
    {
        var e = Assert.Throws<StrataException>(() => new SafetensorsFile(Save(File(header, new byte[dataBytes]))));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Header_length_past_the_end_is_refused()
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        var e = Assert.Throws<StrataException>(() => new SafetensorsFile(Save(bytes)));
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void TensorBoard_records_carry_valid_masked_crc32c()
    {
        // CRC-32C check value of "123456789" is 0xE3069283 (RFC 3720)
        Assert.Equal(0xE3069283u, TensorBoardWriter.Crc32C("123456789"u8));
        var dir = TestPaths.TempDir();
        string path;
        using (var w = new TensorBoardWriter(dir))
        {
            w.Scalar("train/loss", 3, 2.5f);
            path = w.Path;
        }
        var bytes = System.IO.File.ReadAllBytes(path);
        int records = 0, pos = 0;
        while (pos < bytes.Length)
        {
            var len = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(pos));
            Assert.Equal(TensorBoardWriter.MaskedCrc(bytes.AsSpan(pos, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 8)));
            Assert.Equal(TensorBoardWriter.MaskedCrc(bytes.AsSpan(pos + 12, len)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 12 + len)));
            pos += 12 + len + 4;
            records++;
        }
        Assert.Equal(2, records);
        Assert.Contains("train/loss", Encoding.UTF8.GetString(bytes));
        Assert.Contains("brain.Event:2", Encoding.UTF8.GetString(bytes));
    }
}
