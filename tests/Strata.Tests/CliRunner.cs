namespace Strata.Tests;

internal static class CliRunner
{
    /// <summary>Runs the CLI in-process: (exit code, stdout, stderr).</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Strata.Cli.Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
