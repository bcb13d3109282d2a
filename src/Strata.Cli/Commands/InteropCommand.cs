using System.CommandLine;
using Strata.Interop;
using Strata.Runs;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class InteropCommand
{
    /// <summary>strata export --checkpoint CKPT --format hf --out DIR</summary>
    public static Command Export(TextWriter output)
    {
        var checkpoint = Opt.Required("--checkpoint", "the checkpoint to export (LoRA adapters of a mid-phase checkpoint are merged)", "CKPT");
        var format = Opt.Text("--format", "hf", "hf: a Hugging Face GPTNeoXForCausalLM directory", "hf");
        var outDir = Opt.Required("--out", "the directory to write", "DIR");
        var command = new Command("export",
            "a Hugging Face GPTNeoXForCausalLM directory (config.json, model.safetensors, tokenizer, strata.json)") { checkpoint, format, outDir };
        command.SetAction(p =>
        {
            if (p.GetValue(format) != "hf") throw new StrataException(
                $"--format: only 'hf' (Hugging Face GPTNeoXForCausalLM) is supported, got '{p.GetValue(format)}'");
            var dir = p.GetValue(outDir)!;
            HfExport.Export(CheckpointPaths.Resolve(p.GetValue(checkpoint)!), dir);
            output.WriteLine($"{dir}: config.json, model.safetensors, tokenizer files, {HfExport.MetadataFile} (GPTNeoXForCausalLM; docs/EXPORT.md)");
            return 0;
        });
        return command;
    }

    /// <summary>strata import DIR --out CKPT</summary>
    public static Command Import(TextWriter output)
    {
        var dir = Opt.One("DIR", "a GPT-NeoX directory: config.json and model.safetensors or pytorch_model.bin");
        var outPath = Opt.Required("--out", "the checkpoint to write", "CKPT");
        var tokenizer = Opt.Text("--tokenizer", "the tokenizer, when the directory has no tokenizer.json or strata.json", "NAME|FILE.json");
        var command = new Command("import", "a GPT-NeoX directory (model.safetensors or pytorch_model.bin) as a Strata checkpoint") { dir, outPath, tokenizer };
        command.SetAction(p =>
        {
            var path = p.GetValue(outPath)!;
            if (File.Exists(path)) throw new StrataException($"{path} already exists");
            var (model, info) = HfExport.Import(p.GetValue(dir)!, p.GetValue(tokenizer));
            using (model) Checkpoint.Save(path, model, null, info);
            output.WriteLine($"{path}: depth {info.Depth}, d_model {info.Plan.Model.DModel}, substrate {info.Plan.Substrate.Describe()}, tokenizer " +
                $"{info.Tokenizer}");
            return 0;
        });
        return command;
    }
}
