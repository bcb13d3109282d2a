using Strata.Formats;
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
        Assert.True((norms - 1).abs().max().item<float>() < 1e-5);             // unit rows, as the published substrates
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

    [Fact]
    public void A_file_that_is_not_a_torch_zip_is_refused()
    {
        var path = Path.Combine(TestPaths.TempDir(), "x.pt");
        File.WriteAllText(path, "not a zip");
        var e = Assert.Throws<Strata.Util.StrataException>(() => PyTorchTensorFile.Read(path));
        Assert.Contains(path, e.Message);
    }
}
