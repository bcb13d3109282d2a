using Strata.Data;
using Strata.Formats;
using Strata.Modeling;
using Strata.Runs;
using Strata.Substrates;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>The visual substrate at full size, built once per test run (about 8 s here) into a private cache.</summary>
internal static class VisualTable
{
    public static readonly string Home = TestPaths.TempDir();
    public static readonly Lazy<SubstrateFile> TwoThree = new(() =>
        SubstrateBuilder.Build(new SubstrateSpec { Kind = SubstrateKind.Visual }, 65536, Home));
}

[Collection("torch")]
public class SubstrateFamilyTests
{
    private static double MaxDeviation(Tensor t) => t.abs().max().to(ScalarType.Float64).item<double>();

    [Fact]
    public void The_visual_substrate_has_unit_rows_an_orthonormal_basis_and_builds_byte_identically()
    {
        var file = VisualTable.TwoThree.Value;
        Assert.Equal([65536L, 1024], file.Table.shape);
        using (var norms = file.Table.to(ScalarType.Float64).norm(1))
            Assert.True(MaxDeviation(norms.sub(Scalars.One)) < 1e-6);
        // a second build from nothing gives the same bytes (and so the same hash) as the cached one
        var tokens = Strata.Tokenization.Bvv241Builder.Get(Strata.Tokenization.Bvv241Builder.TwoThree).Tokens;
        using var glyphs = new UnicodeGlyphs(UnicodeGlyphs.DebianFont, 32);
        using var again = VisualUnicodeTable.Build(tokens, VisualVariant.TwoThree, glyphs);
        Assert.Equal(file.Hash, SubstrateTables.ContentHash(again));
        Assert.True(file.Table.bytes.SequenceEqual(again.bytes));
        // the PCA basis is orthonormal
        using var bits = torch.tensor(VisualUnicodeTable.Bits(tokens.Take(4096).ToList(), VisualVariant.TwoThree, glyphs), [4096, 1024]);
        var (mean, axes) = SubstrateTables.PrincipalAxes(bits);
        using var _m = mean;
        using var _a = axes;
        using var gram = axes.t().matmul(axes);
        Assert.True(MaxDeviation(gram - torch.eye(1024, dtype: ScalarType.Float64)) < 1e-9);
        // ids of distinct text get distinct rows: 'A' and 'B' differ, the cached file reloads with its hash
        Assert.False(file.Table['A'].equal(file.Table['B']).all().item<bool>());
        using var reloaded = SubstrateFile.Load(Directory.GetFiles(SubstrateBuilder.CacheDir(VisualTable.Home)).Single());
        Assert.Equal(file.Hash, reloaded.Hash);
    }

    [Fact]
    public void Affine_random_and_float_codes_are_collision_free_and_reproducible()
    {
        var (a, b) = SubstrateTables.AffineMap(16, seed: 5);
        Assert.Equal(16, SubstrateTables.Rank(a, 16));
        using var affine = SubstrateTables.AffineCode(65536, 16, 5);
        Assert.Equal(65536, affine.unique(dim: 0).output.shape[0]);
        uint t = 0x4E2D, c = SubstrateTables.Apply(a, b, t, 16);
        Assert.Equal(Enumerable.Range(0, 16).Select(j => (float)((c >> (15 - j)) & 1)), affine[(long)t].data<float>().ToArray());
        using var plain = SubstrateTables.BinaryCode(65536, 16);
        Assert.False(plain.equal(affine).all().item<bool>());
        Assert.Equal(SubstrateTables.ContentHash(affine), SubstrateTables.ContentHash(SubstrateTables.AffineCode(65536, 16, 5)));
        foreach (var bits in new[] { 64, 256 })
        {
            using var random = SubstrateTables.RandomCode(65536, bits, seed: 1);
            Assert.Equal(65536, random.unique(dim: 0).output.shape[0]);
            Assert.InRange(random.mean().item<float>(), 0.49, 0.51);
        }
        using var floats = SubstrateBuilder.Build(new SubstrateSpec { Kind = SubstrateKind.Binary, Float = true }, 65536);
        using (var norms = floats.Table.to(ScalarType.Float64).norm(1))
            Assert.True(MaxDeviation(norms.sub(Scalars.One)) < 1e-6);
        var cfg = new ModelConfig { DModel = 1024, NHead = 16, ContextLength = 8, VocabSize = 65536 };
        using var lifted = SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.RandomCode, Bits = 64, Seed = 1 }, cfg.VocabSize, cfg.DModel);
        using var ids = torch.tensor(new long[] { 7 }).view(1, 1);
        using var row = lifted.call(ids)[0, 0];
        Assert.Equal(1024, row.shape[0]);                                              // 64 bits x 16 (repeat_interleave)
    }

    [Fact]
    public void Published_formats_read_as_substrate_files()
    {
        var pt = SubstrateFile.Read(TestPaths.Data("pytorch", "normalized_embeddings_weights.pt"));
        using var st = new Strata.Formats.SafetensorsFile(TestPaths.Data("pytorch", "normalized_embeddings_weights.safetensors"));
        using var expected = st.Read("weight");
        Assert.True(pt.Table.equal(expected).all().item<bool>());
        Assert.Equal(SubstrateKind.File, pt.Recipe.Spec.Kind);
        // embeddings.txt: alternating "{id}" and "[b0, b1, ...]" lines
        var dir = TestPaths.TempDir();
        var txt = Path.Combine(dir, "embeddings.txt");
        using var code = SubstrateTables.BinaryCode(300, 16);
        File.WriteAllLines(txt, Enumerable.Range(0, 300).SelectMany(i => new[] { i.ToString(), "[" + string.Join(", ",
            code[i].data<float>().ToArray().Select(v => v.ToString("F1"))) + "]" }));
        using var read = SubstrateFile.Read(txt);
        Assert.True(read.Table.equal(code).all().item<bool>());
        File.WriteAllLines(txt, ["0", "[0, 1, 0]", "1", "[0, 1]"]);
        Assert.Equal($"{txt}:4: 2 values, the rows before have 3", Assert.Throws<StrataException>(() => SubstrateFile.Read(txt)).Message);
        File.WriteAllLines(txt, ["0", "[0, 1]", "2", "[1, 1]"]);
        Assert.Equal($"{txt}:3: expected the id 1 alone on the line", Assert.Throws<StrataException>(() => SubstrateFile.Read(txt)).Message);
    }

    [Fact]
    public void A_corrupted_substrate_file_a_missing_font_and_a_size_mismatch_get_one_clear_error()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "code.safetensors");
        using (var f = SubstrateBuilder.Build(new SubstrateSpec(), 65536)) f.Save(path);
        var bytes = File.ReadAllBytes(path);
        bytes[^5] ^= 0x40;                                                              // a flipped bit in the table
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<StrataException>(() => SubstrateFile.Load(path));
        Assert.Matches($"^{System.Text.RegularExpressions.Regex.Escape(path)}: corrupted substrate file: its content hashes to " +
            $"[0-9a-f]{{64}}, the file records [0-9a-f]{{64}}$", e.Message);

        var font = Path.Combine(dir, "no-such-unifont.otf");
        e = Assert.Throws<StrataException>(() => new UnicodeGlyphs(font, 32));
        Assert.Equal($"{font}: the GNU Unifont font is missing; it comes from the Debian package fonts-unifont (apt-get install fonts-unifont; " +
                     "in a Strata checkout scripts/bootstrap.sh installs it)", e.Message);

        e = Assert.Throws<StrataException>(() => SubstrateBuilder.Build(new SubstrateSpec { Kind = SubstrateKind.Visual }, 131072, VisualTable.Home));
        Assert.Equal("substrate: tokenizer 'bvv241-2-3' has 65,536 entries but the model's vocabulary is 131,072", e.Message);
        var cfg = new ModelConfig { DModel = 64, NHead = 4, ContextLength = 8, VocabSize = 300 };
        e = Assert.Throws<StrataException>(() => SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.File, Path = path.Replace("code",
            "x") }, cfg.VocabSize, cfg.DModel));
        Assert.EndsWith("no such substrate file", e.Message);
        var pt = TestPaths.Data("pytorch", "normalized_embeddings_weights.pt");                   // [300, 16]
        e = Assert.Throws<StrataException>(() => SubstrateBuilder.Create(new SubstrateSpec { Kind = SubstrateKind.File, Path = pt }, 301, cfg.DModel));
        Assert.Equal("substrate: the table has 300 rows but the model's vocabulary is 301", e.Message);
        e = Assert.Throws<StrataException>(() => new SubstrateSpec { Kind = SubstrateKind.Visual }.Validate(cfg.VocabSize, cfg.DModel));
        Assert.Contains("use \"lift\": \"truncate\"", e.Message);
    }

    [Fact]
    public void Models_train_on_the_visual_substrate_and_checkpoints_are_bound_to_its_hash()
    {
        // bvv241-2-3 ids of a few speeches, the real 65,536 x 1,024 visual table, its first 64 principal axes
        var dir = TestPaths.TempDir();
        var speeches = Corpora.EnglishFiles.Take(12).ToList();
        DataPreparer.Prepare(new PrepareOptions { Inputs = speeches, OutDir = dir, ValidationFraction = 0.2 });
        var spec = new SubstrateSpec { Kind = SubstrateKind.Visual, Lift = SubstrateLift.Truncate };
        var plan = SotuData.Plan(30, d: 64, context: 32, batch: 8, lr: 1e-2) with
        {
            Substrate = spec,
            Data = SotuData.DataAt(dir),
        };
        var r = Trainer.Run(plan, new TrainOptions { OutDir = Path.Combine(dir, "run"), Log = TextWriter.Null });   // the table from the Strata home's cache
        Assert.True(r.FinalValidationLoss < r.InitialValidationLoss - 2, $"{r.InitialValidationLoss} -> {r.FinalValidationLoss}");
        var info = Checkpoint.ReadInfo(r.Run.Checkpoint);
        var (model, _) = Checkpoint.LoadModel(r.Run.Checkpoint);
        using (model)
        {
            Assert.Equal(info.SubstrateHash, model.Substrate.ContentHash);
            var table = ((FrozenTableSubstrate)model.Substrate).Table;
            Assert.Equal([65536L, 64], table.shape);
            using var expected = VisualTable.TwoThree.Value.Table.narrow(1, 0, 64);
            using var normalised = expected / expected.norm(1, true, 2);
            Assert.True(MaxDeviation(table - normalised) < 1e-6);
        }
        // a checkpoint whose substrate table was altered is refused, naming both hashes
        // another table under the same metadata, its per-tensor checksums redone (a flipped bit alone is caught by those)
        using (var file = new Strata.Formats.SafetensorsFile(r.Run.Checkpoint))
        {
            var tensors = file.Entries.Keys.Select(k => (k, file.Read(k))).ToList();
            var table = tensors.First(t => t.k == "model.embed_in.weight").Item2;
            table[0, 3] = TorchSharp.torch.tensor(table[0, 3].item<float>() + 1);
            Strata.Formats.SafetensorsWriter.Write(r.Run.Checkpoint + ".other", tensors,
                file.Metadata.Where(kv => kv.Key != Strata.Formats.SafetensorsFile.ChecksumKey).ToDictionary(), checksums: true);
        }
        File.Move(r.Run.Checkpoint + ".other", r.Run.Checkpoint, overwrite: true);
        var e = Assert.Throws<StrataException>(() => Checkpoint.LoadModel(r.Run.Checkpoint));
        Assert.Matches("stored table \\(the file is corrupted\\) has the substrate table sha256:[0-9a-f]{64}, .*'s metadata has sha256:"
            + info.SubstrateHash, e.Message);
    }
}
