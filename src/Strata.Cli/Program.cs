using System.CommandLine;
using System.CommandLine.Parsing;
using Strata.Cli.Commands;
using Strata.Util;

namespace Strata.Cli;

/// <summary>The command tree (System.CommandLine): one file per command under Commands/, each a thin layer over library
/// calls. Help is generated from the declared options (<c>strata CMD --help</c>); a misspelt option or command gets the
/// closest known one suggested; <c>strata completion bash</c> prints a shell completion script.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        NativeAllocator.KeepFreedMemory();
        OpenMpWaiting.SpinBriefly();
        Signals.Install();
        return Run(args, Console.Out, Console.Error);
    }

    /// <summary>The command tree, writing to <paramref name="output"/>.</summary>
    public static Command Root(TextWriter output)
    {
        // a plain command named "strata" (a RootCommand would be named after the process: dotnet, Strata.Cli)
        var root = new Command("strata", "Strata: grow Transformer language models layer by layer on a frozen token interface.")
        {
            new System.CommandLine.Help.HelpOption { Recursive = true },
            new VersionOption(),
            DemoCommand.Create(output),
            new Command("data", "prepare and inspect token datasets") { DataCommand.Prepare(output), DataCommand.Info(output) },
            new Command("tokenizer", "train, mine, build and try tokenizers") { TokenizerCommand.Train(output), TokenizerCommand.Mine(output),
                TokenizerCommand.Build(output), TokenizerCommand.Encode(output) },
            new Command("substrate", "build and look at frozen token interfaces") { SubstrateCommand.Build(output), SubstrateCommand.Show(output) },
            TrainCommand.Create(output),
            GrowCommand.Create(output),
            StudyCommand.Create(output),
            GenerateCommand.Create(output),
            ServeCommand.Create(output),
            ComposeCommand.Create(output),
            EvalCommand.Create(output),
            InteropCommand.Export(output),
            InteropCommand.Import(output),
            InfoCommand.Create(output),
            CompletionCommand.Create(output),
        };
        return root;
    }

    /// <summary>Every command that does something, by its full name ("data prepare", "eval compare", ...).</summary>
    public static IReadOnlyList<string> CommandNames { get; } = Leaves(Root(TextWriter.Null), "").ToList();

    private static IEnumerable<string> Leaves(Command c, string prefix)
    {
        foreach (var sub in c.Subcommands)
        {
            var name = prefix.Length == 0 ? sub.Name : $"{prefix} {sub.Name}";
            if (sub.Action is not null) yield return name;
            foreach (var n in Leaves(sub, name)) yield return n;
        }
    }

    /// <summary>Runs a command line: 0 on success, 1 for an error in the input (one line "error: ..."), 2 for a command
    /// line that does not parse (one line, with the closest option or command when one is near).</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = Root(output);
        if (args is [CompletionCommand.Verb, var point, var line]) return CompletionCommand.Complete(root, line, int.TryParse(point, out var p) ? p
            : line.Length, output);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
        {
            // a misspelt first word is a misspelt command, whatever the parser made of the words after it
            bool firstWord = parse.UnmatchedTokens.Count > 0 && args.Length > 0 && parse.UnmatchedTokens[0] == args[0];
            var command = firstWord ? root : parse.CommandResult.Command;
            error.WriteLine($"error: {Describe(parse, command)} (see 'strata {(firstWord ? "" : CommandPath(parse.CommandResult))}--help')");
            return 2;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Errors.Describe(e) is { } message)
        {
            error.WriteLine($"error: {message}");
            return 1;
        }
        catch (Exception e)
        {
            error.WriteLine($"error: internal fault ({e.GetType().Name}: {Errors.FirstLine(e.Message)}); the trace is in {Errors.WriteCrashLog(e, args)}");
            return 70;                                                                      // EX_SOFTWARE: a bug, not the input
        }
    }

    private static string CommandPath(CommandResult r)
    {
        var names = new List<string>();
        for (SymbolResult? s = r; s is CommandResult c && c.Parent is not null; s = s.Parent) names.Insert(0, c.Command.Name);
        return names.Count == 0 ? "" : string.Join(' ', names) + " ";
    }

    /// <summary>The first parse error in one line; an unknown option or command names the closest known one.</summary>
    private static string Describe(ParseResult parse, Command command)
    {
        foreach (var token in parse.UnmatchedTokens)
        {
            bool isOption = token.StartsWith('-');
            var known = isOption ? command.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--", StringComparison.Ordinal))
                : command.Subcommands.Select(c => c.Name);
            var closest = known.Select(k => (Name: k, Distance: Levenshtein(token, k))).OrderBy(x => x.Distance).FirstOrDefault();
            var hint = closest.Name is not null && closest.Distance <= Math.Max(2, token.Length / 3) ? $" (did you mean {closest.Name}?)" : "";
            return isOption ? $"unknown option {token}{hint}" : $"unknown command or argument '{token}'{hint}";
        }
        return parse.Errors[0].Message;
    }

    private static int Levenshtein(string a, string b)
    {
        var d = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) d[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            int previous = d[0];
            d[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous + (a[i - 1] == b[j - 1] ? 0 : 1);
                previous = d[j];
                d[j] = Math.Min(substitution, Math.Min(d[j], d[j - 1]) + 1);
            }
        }
        return d[b.Length];
    }
}
