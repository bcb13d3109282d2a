using Strata.Interop;
using Strata.Training;
using Strata.Util;

namespace Strata.Cli.Commands;

public static class InteropCommand
{
    /// <summary>strata export --checkpoint CKPT --format hf --out DIR</summary>
    public static int Export(Args a, TextWriter output)
    {
        var ckpt = a.Require("checkpoint");
        var format = a.Get("format") ?? "hf";
        var outDir = a.Require("out");
        a.RejectUnknown();
        if (format != "hf") throw new StrataException($"--format: only 'hf' (Hugging Face GPTNeoXForCausalLM) is supported, got '{format}'");
        HfExport.Export(ckpt, outDir);
        output.WriteLine($"{outDir}: config.json, model.safetensors, tokenizer files, {HfExport.MetadataFile} (GPTNeoXForCausalLM; docs/EXPORT.md)");
        return 0;
    }

    /// <summary>strata import DIR --out CKPT</summary>
    public static int Import(Args a, TextWriter output)
    {
        var outPath = a.Require("out");
        a.RejectUnknown();
        if (a.Positionals.Count != 1) throw new StrataException("give one Hugging Face GPT-NeoX directory");
        if (File.Exists(outPath)) throw new StrataException($"{outPath} already exists");
        var (model, info) = HfExport.Import(a.Positionals[0]);
        using (model) Checkpoint.Save(outPath, model, null, info);
        output.WriteLine($"{outPath}: depth {info.Depth}, d_model {info.Plan.Model.DModel}, substrate {info.Plan.Substrate.Describe()}, tokenizer {info.Tokenizer}");
        return 0;
    }
}
