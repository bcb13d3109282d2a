using System.Diagnostics;
using System.Text.Json;
using Strata.Formats;
using Strata.Interop;
using TorchSharp;
using Xunit;

namespace Strata.Tests;

/// <summary>bench/gpu-check.sh, run on the CPU at tiny shapes: what the GPU machine will run, so the script cannot rot.</summary>
[Collection("torch")]
public class GpuCheckTests
{
    [Fact]
    public async Task Gpu_check_runs_on_the_cpu_at_tiny_shapes_and_its_export_reproduces_strata_logits()
    {
        var outDir = TestPaths.TempDir();
        var info = new ProcessStartInfo("bash", ["bench/gpu-check.sh", "run", "--device", "cpu", "--tiny", "--out", outDir])
        {
            WorkingDirectory = TestPaths.RepoRoot, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, stdout + await stderr);

        // Strata's half: both configurations in all three precisions, and the printed table
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "gpu-check.json"))))
        {
            var rows = doc.RootElement.GetProperty("rows").EnumerateArray().ToList();
            Assert.Equal(6, rows.Count);
            Assert.All(rows, r => Assert.True(r.GetProperty("strata_tokens_per_s").GetDouble() > 0));
            Assert.Equal(["fp32", "tf32", "bf16"], rows.Select(r => r.GetProperty("precision").GetString()).Distinct());
            var speedup = doc.RootElement.GetProperty("stage3_speedup").EnumerateArray().First();
            Assert.True(speedup.GetProperty("predicted_by_flops").GetDouble() > 1);
        }
        Assert.Contains("| stage 3 | bf16 |", stdout);
        Assert.Contains("after step 20", stdout);
        Assert.Contains("unchanged, as they must be", stdout);                             // the world-size-1 all-reduce path ran

        // the export: Strata reads it back and computes the logits the check hands to transformers
        var export = Path.Combine(outDir, "export");
        var (model, _) = HfExport.Import(export);
        using var _ = model;
        using var expected = new SafetensorsFile(Path.Combine(export, "strata_logits.safetensors"));
        using var noGrad = torch.no_grad();
        model.eval();
        using var logits = model.Forward(expected.Read("input_ids"));
        using var want = expected.Read("logits");
        Assert.Equal(want.shape, logits.shape);
        Assert.True((logits - want).abs().max().item<float>() < 1e-4);
    }
}
