using System.CommandLine;
using Strata.Interop;
using Strata.Runs;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class InteropCommand
{
    /// <summary>strata export --checkpoint CKPT --format hf|gguf|onnx --out PATH [--dtype T] [--force]</summary>
    public static Command Export(TextWriter output)
    {
        var checkpoint = Opt.Required("--checkpoint", "the checkpoint or run folder to export (LoRA adapters are merged)", "CKPT|RUN");
        var format = Opt.Text("--format", "hf", "hf: a Hugging Face GPTNeoXForCausalLM folder; gguf: one file for llama.cpp; onnx: a folder for ONNX Runtime",
            "hf|gguf|onnx");
        format.AcceptOnlyFromAmong("hf", "gguf", "onnx");
        var outPath = Opt.Required("--out", "the folder (hf, onnx) or file (gguf) to write", "PATH");
        var dtype = Opt.Text("--dtype", "f32", "gguf: the matrices' type (norms and biases stay f32)", "f32|f16|bf16|q8_0");
        dtype.AcceptOnlyFromAmong("f32", "f16", "bf16", "q8_0");
        var force = Opt.Flag("--force", "replace what is at --out");
        var command = new Command("export",
            "a Hugging Face GPTNeoXForCausalLM folder, a GGUF file for llama.cpp, or an ONNX folder for ONNX Runtime (docs/EXPORT.md)")
            { checkpoint, format, outPath, dtype, force };
        command.SetAction(p =>
        {
            var path = p.GetValue(outPath)!;
            var source = CheckpointPaths.Resolve(p.GetValue(checkpoint)!);
            switch (p.GetValue(format))
            {
                case "gguf":
                    var type = p.GetValue(dtype) switch { "f16" => Formats.GgmlType.F16, "bf16" => Formats.GgmlType.BF16, "q8_0" => Formats.GgmlType.Q8_0,
                        _ => Formats.GgmlType.F32 };
                    Report(output, GgufExport.Export(source, path, type, p.GetValue(force)), "GGUF for llama.cpp, architecture gptneox");
                    break;
                case "onnx":
                    Report(output, OnnxExport.Export(source, path, p.GetValue(force)), "ONNX, opset 17, with a KV cache");
                    break;
                default:
                    if (p.GetValue(force) && Directory.Exists(path)) Directory.Delete(path, recursive: true);
                    HfExport.Export(source, path);
                    output.WriteLine($"{path}: config.json, model.safetensors, tokenizer files, {HfExport.MetadataFile} (GPTNeoXForCausalLM; docs/EXPORT.md)");
                    break;
            }
            return 0;
        });
        return command;
    }

    private static void Report(TextWriter output, ExportSummary s, string what)
    {
        output.WriteLine($"{s.Path}: {s.Bytes / 1e6:F1} MB, {what}");
        foreach (var note in s.Notes) output.WriteLine($"note: {note}");
    }

    /// <summary>strata import DIR --out CKPT</summary>
    public static Command Import(TextWriter output)
    {
        var dir = Opt.One("DIR", "a GPT-NeoX directory: config.json and model.safetensors or pytorch_model.bin");
        var outPath = Opt.Required("--out", "the checkpoint to write", "CKPT");
        var tokenizer = Opt.Text("--tokenizer", "the tokenizer, in place of the directory's tokenizer.json or the one its strata.json names",
            "NAME|FILE.json");
        var command = new Command("import", "a GPT-NeoX directory (model.safetensors or pytorch_model.bin) as a Strata checkpoint") { dir, outPath, tokenizer };
        command.SetAction(p =>
        {
            var path = p.GetValue(outPath)!;
            if (File.Exists(path)) throw new StrataException($"{path} already exists");
            var (model, info) = HfExport.Import(p.GetValue(dir)!, p.GetValue(tokenizer));
            if (info.Tokenizer.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && File.Exists(info.Tokenizer))
            {
                // a copy of the tokenizer.json beside the checkpoint, named relative to it: the two move together
                var copy = Path.GetFileNameWithoutExtension(path) + ".tokenizer.json";
                AtomicFile.Copy(info.Tokenizer, Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, copy));
                info = info with { Tokenizer = copy };
            }
            using (model) Checkpoint.Save(path, model, null, info);
            output.WriteLine($"{path}: depth {info.Depth}, d_model {info.Plan.Model.DModel}, substrate {info.Plan.Substrate.Describe()}, tokenizer " +
                $"{info.Tokenizer}");
            return 0;
        });
        return command;
    }
}
