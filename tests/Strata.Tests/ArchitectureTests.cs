using Xunit;

namespace Strata.Tests;

/// <summary>The library's folders form floors and every reference points down, and no two files of a folder use each
/// other, read off the compiled assembly (docs/ARCHITECTURE.md). scripts/architecture.sh prints the graph.</summary>
public class ArchitectureTests
{
    /// <summary>Each folder with the floor it stands on; a type may use types of lower floors only.</summary>
    private static readonly Dictionary<string, int> Floors = new()
    {
        ["Util"] = 0, ["Formats"] = 1, ["Tokenization"] = 1, ["Distributed"] = 1, ["Optim"] = 1, ["Substrates"] = 2, ["Modeling"] = 3, ["Data"] = 3,
        ["Generation"] = 4, ["Runs"] = 4, ["Evaluation"] = 5, ["Training"] = 6, ["Composition"] = 6, ["Interop"] = 6,
    };

    private static readonly Lazy<AssemblyGraph> Graph = new(() =>
        AssemblyGraph.Read(typeof(Strata.Util.StrataException).Assembly.Location, Path.Combine(TestPaths.RepoRoot, "src", "Strata")));

    /// <summary>What scripts/architecture.sh prints: this build's graph, or another build's (STRATA_ASSEMBLY, its
    /// sources under STRATA_SOURCE_ROOT/src/Strata), to compare before and after.</summary>
    private static AssemblyGraph Described() =>
        Environment.GetEnvironmentVariable("STRATA_ASSEMBLY") is { Length: > 0 } dll
            ? AssemblyGraph.Read(dll, Path.Combine(Environment.GetEnvironmentVariable("STRATA_SOURCE_ROOT") ?? TestPaths.RepoRoot, "src", "Strata"))
            : Graph.Value;

    [Fact]
    public void Every_folder_uses_only_the_floors_below_it()
    {
        var g = Graph.Value;
        var root = Path.Combine(TestPaths.RepoRoot, "src", "Strata");
        var folders = Directory.GetDirectories(root).Select(Path.GetFileName).Where(d => d is not ("bin" or "obj")).ToList();
        Assert.Equal(Floors.Keys.Order(), folders.Order());                                 // every folder has a floor
        Assert.Equal(Floors.Keys.Order(), g.FileFolder.Values.Distinct().Order());          // ... and holds the types of its namespace
        var violations = g.FolderEdges.Where(e => e.Key.From == "" || Floors[e.Key.To] >= Floors[e.Key.From])
            .Select(e => $"{e.Key.From} (floor {Floors.GetValueOrDefault(e.Key.From, -1)}) uses {e.Key.To} (floor {Floors[e.Key.To]}): {e.Value}").ToList();
        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void No_two_files_of_a_folder_use_each_other()
    {
        var cycles = AssemblyGraph.Cycles(Graph.Value.FileEdges.Keys);
        Assert.True(cycles.Count == 0, string.Join("\n", cycles.Select(c => string.Join(" <-> ", c) + ": " +
            string.Join("; ", Graph.Value.FileEdges.Where(e => c.Contains(e.Key.From) && c.Contains(e.Key.To)).Select(e =>
                $"{e.Key.From} -> {e.Key.To} ({e.Value})")))));
    }

    /// <summary>The graph as scripts/architecture.sh prints it (artifacts/architecture.txt).</summary>
    [Fact]
    public void The_graph_is_written_for_the_script()
    {
        var graph = Described();
        var text = graph.Describe();
        var path = Path.Combine(TestPaths.RepoRoot, "artifacts", "architecture.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        Assert.Contains("Public surface:", text);
        Assert.True(graph.PublicTypes > 10 && graph.FolderEdges.Count > 10);
    }
}
