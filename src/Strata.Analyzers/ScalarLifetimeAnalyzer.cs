using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Strata.Analyzers;

/// <summary>
/// STRATA002: a TorchSharp <c>Scalar</c> is made only where something holds it: a <c>using</c> local or a field.
/// </summary>
/// <remarks>
/// A <c>Scalar</c> owns a native c10::Scalar that its finalizer frees. TorchSharp's methods pass <c>value.Handle</c> to
/// libtorch without keeping the managed object alive, so a Scalar made in the argument list (<c>x.mul_(0.5)</c>,
/// <c>t.masked_fill(m, double.NegativeInfinity)</c>, <c>1.0.ToScalar()</c>) can be finalized by a collection on any
/// other thread while libtorch still reads it: libtorch then reads freed memory, which fails ("toFloat") or, worse,
/// computes with whatever the memory holds. A <c>using</c> local is disposed after the call, so it stays alive through
/// it; a field lives as long as its owner.
/// </remarks>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class ScalarLifetimeAnalyzer : DiagnosticAnalyzer
{
    public static readonly DiagnosticDescriptor Rule = new(
        "STRATA002",
        "A TorchSharp Scalar made where nothing holds it",
        "{0} makes a TorchSharp Scalar that nothing holds: a collection on another thread can free it while libtorch "
        + "reads it; make the Scalar a 'using' local (using var s = value.ToScalar();) or a field, and pass that{1}",
        "Reliability",
        DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(Rule);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            if (scalar is null) return;
            var torchSharp = start.Compilation.References.OfType<PortableExecutableReference>()
                .FirstOrDefault(r => Path.GetFileName(r.FilePath) == "TorchSharp.dll")?.FilePath;
            var makers = torchSharp is null ? ImmutableHashSet<string>.Empty : TorchSharpScalarMakers.Of(torchSharp);
            const string inside = " (TorchSharp makes it inside this member: call the overload that takes the Scalar)";
            start.RegisterOperationAction(c =>
            {
                var called = c.Operation switch
                {
                    IConversionOperation o => o.OperatorMethod,
                    IInvocationOperation o => o.TargetMethod,
                    IBinaryOperation o => o.OperatorMethod,
                    IUnaryOperation o => o.OperatorMethod,
                    ICompoundAssignmentOperation o => o.OperatorMethod,
                    IObjectCreationOperation o => o.Constructor,
                    _ => null,
                };
                if (called is null) return;
                bool makesOne = called.MethodKind != MethodKind.Constructor && called.ReturnType.Equals(scalar, SymbolEqualityComparer.Default);
                if (makesOne ? !IsHeld(c.Operation) : makers.Contains(called.OriginalDefinition.GetDocumentationCommentId() ?? ""))
                    c.ReportDiagnostic(Diagnostic.Create(Rule, c.Operation.Syntax.GetLocation(), $"'{c.Operation.Syntax}'", makesOne ? "" : inside));
            }, OperationKind.Conversion, OperationKind.Invocation, OperationKind.Binary, OperationKind.Unary,
               OperationKind.CompoundAssignment, OperationKind.ObjectCreation);
        });
    }

    /// <summary>Whether the value goes straight into a using local's or a field's initializer.</summary>
    private static bool IsHeld(IOperation made)
    {
        var parent = made.Parent;
        while (parent is IConversionOperation { OperatorMethod: null } or IParenthesizedOperation) parent = parent.Parent;
        if (parent is IFieldInitializerOperation) return true;
        if (parent is not IVariableInitializerOperation) return false;
        for (var p = parent.Parent; p is not null; p = p.Parent)
        {
            if (p is IUsingDeclarationOperation or IUsingOperation) return true;
            if (p is not (IVariableDeclaratorOperation or IVariableDeclarationOperation or IVariableDeclarationGroupOperation))
                return false;
        }
        return false;
    }
}
