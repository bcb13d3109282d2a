using System.CommandLine;

namespace Strata.Cli.Commands;

/// <summary>strata completion bash: a bash (and zsh, through bashcompinit) completion script that asks Strata itself
/// what can follow the words typed so far (System.CommandLine's completions of the same command tree).</summary>
public static class CompletionCommand
{
    /// <summary>The hidden first word of a completion request: <c>strata __complete CURSOR "LINE"</c>.</summary>
    public const string Verb = "__complete";

    public static Command Create(TextWriter output)
    {
        var shell = Opt.One("SHELL", "bash (zsh: run 'autoload -U bashcompinit && bashcompinit' first)");
        shell.AcceptOnlyFromAmong("bash");
        var command = new Command("completion", "print a shell completion script: eval \"$(strata completion bash)\"") { shell };
        command.SetAction(_ =>
        {
            output.Write($$"""
                _strata_complete() {
                  local IFS=$'\n'
                  COMPREPLY=( $("${COMP_WORDS[0]}" {{Verb}} "${COMP_POINT}" "${COMP_LINE}" 2>/dev/null) )
                }
                complete -o default -F _strata_complete strata

                """);
            return 0;
        });
        return command;
    }

    /// <summary>Prints, one per line, what can stand at <paramref name="cursor"/> of <paramref name="line"/> (the whole
    /// command line as the shell has it, the program's name first).</summary>
    public static int Complete(Command root, string line, int cursor, TextWriter output)
    {
        cursor = Math.Clamp(cursor, 0, line.Length);
        int start = line.IndexOf(' ');                                                 // drop the program's name
        if (start < 0) return 0;
        var rest = line[(start + 1)..cursor];
        foreach (var item in root.Parse(rest).GetCompletions(rest.Length)) output.WriteLine(item.Label);
        return 0;
    }
}
