using Strata.Formats;
using Strata.Util;
using System.Collections;
using Strata.Interop;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

[Collection("torch")]
public class PyTorchFileTests
{
    [Fact]
    public void A_bare_torch_save_tensor_equals_its_safetensors_twin()
    {
        using var pt = PyTorchTensorFile.ReadTensor(TestPaths.Data("pytorch", "normalized_embeddings_weights.pt"));
        using var st = new SafetensorsFile(TestPaths.Data("pytorch", "normalized_embeddings_weights.safetensors"));
        using var expected = st.Read("weight");
        Assert.Equal([300L, 16], pt.shape);
        Assert.Equal(expected.data<float>().ToArray(), pt.data<float>().ToArray());
        using var norms = pt.norm(1);
        Assert.True(norms.sub(Scalars.One).abs().max().item<float>() < 1e-5);             // unit rows, as the published substrates
    }

    [Fact]
    public void A_state_dict_reads_the_same_as_TorchSharp_PyBridge_reads_it()
    {
        var path = TestPaths.Data("hf-gpt-neox-tiny", "pytorch_model.bin");
        var ours = (Dictionary<string, object?>)PyTorchTensorFile.Read(path)!;
        var theirs = TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(path);
        Assert.Equal(theirs.Count, ours.Count);
        foreach (DictionaryEntry e in theirs)
            Assert.Equal(((Tensor)e.Value!).data<float>().ToArray(), ((Tensor)ours[(string)e.Key]!).data<float>().ToArray());
    }

    [Fact]
    public void Every_dtype_of_the_fixture_loads()
    {
        using var f = new SafetensorsFile(TestPaths.Data("pytorch", "dtypes.safetensors"));
        Assert.Equal(2, f.Metadata.Count);
        var types = f.Entries.Keys.ToDictionary(k => k, k => f.Read(k));
        Assert.Contains(types.Values, t => t.dtype == ScalarType.BFloat16 && t.shape.SequenceEqual(new long[] { 3, 4 }));
        Assert.Contains(types.Values, t => t.dtype == ScalarType.Float16 && t.shape.SequenceEqual(new long[] { 6 }));
        Assert.Contains(types.Values, t => t.dtype == ScalarType.Byte && t.shape.SequenceEqual(new long[] { 3 }));
        Assert.Contains(types.Values, t => t.dtype == ScalarType.Float32 && t.shape.Length == 0);
        var i64 = types.Values.Single(t => t.dtype == ScalarType.Int64);
        Assert.Contains(205891132094649L, i64.data<long>().ToArray());                 // 3^30
    }

    /// <summary>A pytorch_model.bin of <paramref name="pickle"/> and storages (compressed or stored), in a folder with
    /// the tiny GPT-NeoX config, ready for 'strata import'.</summary>
    private static string HostileImport(byte[] pickle, (string Key, byte[] Bytes, bool Compress)[] storages)
    {
        var dir = TestPaths.TempDir();
        File.Copy(TestPaths.Data("hf-gpt-neox-tiny", "config.json"), Path.Combine(dir, "config.json"));
        using (var zip = System.IO.Compression.ZipFile.Open(Path.Combine(dir, "pytorch_model.bin"), System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var s = zip.CreateEntry("archive/data.pkl", System.IO.Compression.CompressionLevel.NoCompression).Open()) s.Write(pickle);
            foreach (var (key, bytes, compress) in storages)
                using (var s = zip.CreateEntry($"archive/data/{key}", compress ? System.IO.Compression.CompressionLevel.Optimal
                           : System.IO.Compression.CompressionLevel.NoCompression).Open())
                    s.Write(bytes);
        }
        return dir;
    }

    [Fact]
    public void A_state_dict_of_dicts_nested_100000_deep_is_refused_without_recursing()
    {
        var p = new List<byte> { 0x80, 2, (byte)'}' };                                   // PROTO 2, the outer dict
        for (int i = 0; i < 100_000; i++) p.AddRange([0x8c, 1, (byte)'a', (byte)'}']);    // key "a", a new dict, ...
        for (int i = 0; i < 100_000; i++) p.Add((byte)'s');                               // ... each set into the one before
        p.Add((byte)'.');
        var dir = HostileImport(p.ToArray(), []);
        var (code, _, err) = CliRunner.Run("import", dir, "--tokenizer", "codepoint", "--out", Path.Combine(TestPaths.TempDir(), "x.safetensors"));
        Assert.Equal(1, code);
        Assert.True(err.Contains("nests more than 32 deep"), err);
    }

    [Fact]
    public void A_512_MiB_zip_bomb_in_a_state_dict_is_refused_before_it_is_unpacked()
    {
        const long elements = 128L << 20;                                                    // 512 MiB of float32
        // {'w': _rebuild_tensor_v2(storage('0', FloatStorage, numel), 0, (numel,), (1,), False, OrderedDict())}
        var p = new List<byte> { 0x80, 2, (byte)'}', 0x8c, 1, (byte)'w' };
        p.AddRange("ctorch._utils\n_rebuild_tensor_v2\n"u8.ToArray());
        p.AddRange([(byte)'(', (byte)'(', 0x8c, 7, .. "storage"u8.ToArray()]);                  // MARK (the call's arguments), MARK (the storage id)
        p.AddRange("ctorch\nFloatStorage\n"u8.ToArray());
        p.AddRange([0x8c, 1, (byte)'0', 0x8c, 3, .. "cpu"u8.ToArray(), (byte)'J', .. BitConverter.GetBytes((int)elements), (byte)'t', (byte)'Q']);
        p.AddRange([(byte)'K', 0, (byte)'J', .. BitConverter.GetBytes((int)elements), 0x85, (byte)'K', 1, 0x85, 0x89, (byte)'}', (byte)'t', (byte)'R']);
        p.AddRange([(byte)'s', (byte)'.']);
        var dir = HostileImport(p.ToArray(), [("0", new byte[elements * 4], true)]);
        long before = GC.GetTotalAllocatedBytes();
        var (code, _, err) = CliRunner.Run("import", dir, "--tokenizer", "codepoint", "--out", Path.Combine(TestPaths.TempDir(), "x.safetensors"));
        Assert.Equal(1, code);
        Assert.True(err.Contains("zip bomb"), err);
        Assert.True(GC.GetTotalAllocatedBytes() - before < 64 << 20, "the storage was unpacked");
    }

    [Fact]
    public void A_file_that_is_not_a_torch_zip_is_refused()
    {
        var path = Path.Combine(TestPaths.TempDir(), "x.pt");
        File.WriteAllText(path, "not a zip");
        var e = Assert.Throws<Strata.Util.StrataException>(() => PyTorchTensorFile.Read(path));
        Assert.Contains(path, e.Message);
    }
}
