using System.Text.RegularExpressions;
using Xunit;

namespace Strata.Tests;

/// <summary>The library's folders form floors and every reference points down (docs/ARCHITECTURE.md).</summary>
public class ArchitectureTests
{
    /// <summary>Each folder with the floor it stands on; a file may use namespaces of lower floors only.</summary>
    private static readonly Dictionary<string, int> Floors = new()
    {
        ["Util"] = 0, ["Formats"] = 1, ["Tokenization"] = 1, ["Distributed"] = 1, ["Substrates"] = 2, ["Modeling"] = 3, ["Data"] = 3,
        ["Generation"] = 4, ["Evaluation"] = 5, ["Training"] = 6, ["Composition"] = 7, ["Interop"] = 7,
    };

    [Fact]
    public void Every_folder_uses_only_the_floors_below_it()
    {
        var root = Path.Combine(TestPaths.RepoRoot, "src", "Strata");
        var folders = Directory.GetDirectories(root).Select(Path.GetFileName).Where(d => d is not ("bin" or "obj")).ToList();
        Assert.Equal(Floors.Keys.Order(), folders.Order());                                // every folder has a floor
        var names = string.Join("|", Floors.Keys);
        var reference = new Regex(@"using (?:static )?Strata\.(" + names + @")\b|(?<![A-Za-z.])(?:Strata\.)?(" + names + @")\.[A-Z]");
        var violations = new List<string>();
        foreach (var folder in folders)
            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, folder!), "*.cs", SearchOption.AllDirectories))
                foreach (Match m in reference.Matches(File.ReadAllText(file)))
                {
                    var target = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
                    if (target != folder && Floors[target] >= Floors[folder!])
                        violations.Add($"{Path.GetRelativePath(root, file)} uses {target} (floor {Floors[target]}) from floor {Floors[folder!]}");
                }
        Assert.True(violations.Count == 0, string.Join("\n", violations.Distinct()));
    }
}
