using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Strata.Tests;

/// <summary>The README's front page run as written: its "your own data" commands, in a fresh folder on a small JSON-lines
/// corpus, and its C# example, which must be samples/GrowAModel's program and run.</summary>
[Collection("torch")]
public class ReadmeTests(ITestOutputHelper log)
{
    private static string Readme => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));

    /// <summary>The first fenced block of <paramref name="language"/> after the heading <paramref name="heading"/>.</summary>
    private static string Block(string heading, string language)
    {
        int at = Readme.IndexOf("\n## " + heading, StringComparison.Ordinal);
        Assert.True(at >= 0, $"README has no '## {heading}'");
        var m = Regex.Match(Readme[at..], "```" + language + "\n(.*?)```", RegexOptions.Singleline);
        Assert.True(m.Success, $"no ```{language} block under '## {heading}'");
        return m.Groups[1].Value;
    }

    /// <summary>A fresh folder as a user's: a JSON-lines corpus of 30 State of the Union addresses, the plans, and
    /// `./strata` (the built command line, as the repository's launcher runs it once set up).</summary>
    private static string UserFolder()
    {
        var dir = TestPaths.TempDir();
        using (var corpus = new StreamWriter(Path.Combine(dir, "my-corpus.jsonl")))
            foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "data", "raw", "sotu", "data"), "19*.txt")
                         .Order(StringComparer.Ordinal).Take(30))
                corpus.WriteLine(JsonSerializer.Serialize(new { text = File.ReadAllText(f) }));
        Directory.CreateSymbolicLink(Path.Combine(dir, "plans"), Path.Combine(TestPaths.RepoRoot, "plans"));
        var cli = Path.Combine(TestPaths.RepoRoot, "src", "Strata.Cli", "bin", "Release", "net10.0", "Strata.Cli.dll");
        var launcher = Path.Combine(dir, "strata");
        File.WriteAllText(launcher, $"#!/usr/bin/env bash\nexec dotnet '{cli}' \"$@\"\n");
        using (var chmod = Process.Start("chmod", ["+x", launcher])) chmod.WaitForExit();
        return dir;
    }

    private static (int Code, string Output) Bash(string dir, string command)
    {
        var psi = new ProcessStartInfo("bash", ["-c", command]) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.Environment["STRATA_HOME"] = TestPaths.RepoRoot;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }

    [Fact]
    public void Your_own_data_in_five_commands_runs_as_written_and_so_does_the_csharp_example()
    {
        var dir = UserFolder();
        var commands = Block("Your own data in five commands", "bash").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(commands.Length, 1, 5);
        foreach (var command in commands)
        {
            var clock = Stopwatch.StartNew();
            var (code, output) = Bash(dir, command);
            log.WriteLine($"$ {command}  ({clock.Elapsed.TotalSeconds:F0} s)\n{string.Join('\n', output.Split('\n').TakeLast(4))}");
            Assert.True(code == 0, $"{command}\n{output}");
        }
        Assert.True(File.Exists(Path.Combine(dir, "runs", "mine", "checkpoint.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir, "mine.gguf")));
        Assert.Single(Directory.GetFiles(Path.Combine(dir, "runs", "mine", "eval"), "eval.json", SearchOption.AllDirectories));

        // the C# example is samples/GrowAModel's program; it trains on the same dataset and samples
        var sample = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "samples", "GrowAModel", "Program.cs"));
        Assert.Equal(sample, Block("From C#", "csharp"));
        var dll = Path.Combine(TestPaths.RepoRoot, "samples", "GrowAModel", "bin", "Release", "net10.0", "GrowAModel.dll");
        var (sampleCode, sampleOutput) = Bash(dir, $"dotnet '{dll}' plans/demo.json data/mine runs/sample");
        log.WriteLine(sampleOutput);
        Assert.True(sampleCode == 0, sampleOutput);
        Assert.Matches(@"step 40/40: validation loss \d", sampleOutput);
        Assert.Contains("The Congress", sampleOutput);
        Assert.True(File.Exists(Path.Combine(dir, "runs", "sample", "checkpoint.safetensors")));
    }
}

/// <summary>Every `strata` command line in the README's and docs/ pages' bash blocks and inline code parses: its command exists and
/// its options are ones the command declares, with values of the right kind, and the plans it names exist.</summary>
public class DocumentedCommandTests(ITestOutputHelper log)
{
    private static readonly Regex Fence = new("```bash\n(.*?)```", RegexOptions.Singleline);
    private static readonly Regex InlineCode = new("(?<!`)`([^`\n]+)`(?!`)");
    private static readonly Regex Invocation = new(@"^(?:[A-Z_]+=\S+\s+)*(?:\./|~/\.strata-tool/)?strata\s+(.*)$");

    /// <summary>The page's strata command lines: in bash blocks (continuation lines joined, comments and pipes cut off)
    /// and in inline code.</summary>
    public static IEnumerable<(string Line, bool Whole)> CommandLines(string markdown)
    {
        foreach (Match block in Fence.Matches(markdown))
            foreach (var line in block.Groups[1].Value.Replace("\\\n", " ").Split('\n'))
            {
                var m = Invocation.Match(line.Trim());
                if (!m.Success) continue;
                var rest = Regex.Replace(m.Groups[1].Value, @"\s+#.*$", "");
                rest = Regex.Split(rest, @"\s(?:\||&&|;|>)\s?")[0];
                yield return (rest.Trim(), true);
            }
        // inline ones, which may name a command and a few of its options only (a synopsis with [optional] parts,
        // alternatives or "..." is not a command line)
        foreach (Match span in InlineCode.Matches(markdown))
        {
            var m = Invocation.Match(span.Groups[1].Value.Trim());
            if (m.Success && !Regex.IsMatch(m.Groups[1].Value, @"[\[\]<>|]|\.\.\."))
                yield return (m.Groups[1].Value.Trim(), false);
        }
    }

    /// <summary>Shell words: single and double quotes group, nothing is expanded.</summary>
    public static List<string> Words(string line)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        bool any = false;
        char quote = '\0';
        foreach (var c in line)
        {
            if (quote != '\0') { if (c == quote) quote = '\0'; else word.Append(c); }
            else if (c is '\'' or '"') { quote = c; any = true; }
            else if (char.IsWhiteSpace(c)) { if (any || word.Length > 0) words.Add(word.ToString()); word.Clear(); any = false; }
            else word.Append(c);
        }
        if (any || word.Length > 0) words.Add(word.ToString());
        return words;
    }

    [Fact]
    public void Every_strata_command_in_the_readme_and_docs_parses()
    {
        var pages = new[] { Path.Combine(TestPaths.RepoRoot, "README.md") }
            .Concat(Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "docs"), "*.md").Order(StringComparer.Ordinal));
        var problems = new List<string>();
        int total = 0;
        foreach (var page in pages)
        {
            var lines = CommandLines(File.ReadAllText(page)).ToList();
            total += lines.Count;
            log.WriteLine($"{Path.GetFileName(page)}: {lines.Count} command line(s)");
            foreach (var (line, whole) in lines)
            {
                var errors = Cli.Program.Root(TextWriter.Null).Parse(Words(line)).Errors.Select(e => e.Message)
                    .Where(e => whole || !(e.EndsWith("is required.", StringComparison.Ordinal) ||
                                           e.StartsWith("Required argument", StringComparison.Ordinal)));
                if (errors.FirstOrDefault() is { } error) problems.Add($"{Path.GetFileName(page)}: strata {line}: {error}");
                var plans = Words(line).Where(w => w.StartsWith("plans/", StringComparison.Ordinal) && w.EndsWith(".json", StringComparison.Ordinal));
                foreach (var plan in plans.Where(p => Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, Path.GetDirectoryName(p)!),
                             Path.GetFileName(p)).Length == 0))                       // a shell glob names at least one
                    problems.Add($"{Path.GetFileName(page)}: strata {line}: no {plan}");
            }
        }
        Assert.True(total > 40, $"only {total} command lines found");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
