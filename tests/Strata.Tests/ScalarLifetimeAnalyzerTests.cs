using System.Collections.Immutable;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using TorchSharp;
using Xunit;

namespace Strata.Tests;

/// <summary>The build's rule STRATA002 (src/Strata.Analyzers): a TorchSharp Scalar is made only where something holds it.</summary>
public class ScalarLifetimeAnalyzerTests
{
    [Fact]
    public void Scalars_that_nothing_holds_are_refused_and_held_ones_pass()
    {
        const string source = """
            using TorchSharp;
            using static TorchSharp.torch;
            static class Sample
            {
                static readonly Scalar Field = 2.0;
                static void Run(Tensor x, Tensor y)
                {
                    x.mul_(0.5);
                    using var sum = x + y;
                    using var product = x * 3.0;
                    var local = 0.25.ToScalar();
                    using var range = torch.arange(10);
                    using Scalar held = 0.5;
                    x.mul_(held).add_(y, Field);
                    using var added = x.add(y, held);
                    using var quarter = 0.25.ToScalar();
                    using var scaled = x.mul(quarter);
                }
            }
            """;
        var lines = Diagnostics(source).Where(d => d.Id == "STRATA002")
            .Select(d => d.Location.GetLineSpan().StartLinePosition.Line + 1).Distinct().Order().ToArray();
        // line 8: a conversion in the argument list; 9: tensor + tensor is add(y, 1) inside TorchSharp; 10: an operator
        // with a number; 11: a local that is not a using; 12: arange(stop) is arange(0, stop, 1) inside TorchSharp
        Assert.Equal([8, 9, 10, 11, 12], lines);
    }

    private static ImmutableArray<Diagnostic> Diagnostics(string source)
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var references = platform.Where(p => Path.GetFileName(p).StartsWith("System.") || Path.GetFileName(p) is "netstandard.dll")
            .Append(typeof(torch).Assembly.Location).Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("Sample", [CSharpSyntaxTree.ParseText(source)], references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var built = Path.Combine(TestPaths.RepoRoot, "src", "Strata.Analyzers", "bin", "Release", "netstandard2.0", "Strata.Analyzers.dll");
        var analyzer = (DiagnosticAnalyzer)Activator.CreateInstance(
            Assembly.LoadFrom(built).GetType("Strata.Analyzers.ScalarLifetimeAnalyzer", throwOnError: true)!)!;
        return compilation.WithAnalyzers([analyzer]).GetAnalyzerDiagnosticsAsync().Result;
    }
}
