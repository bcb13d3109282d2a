using System.CommandLine;

namespace Strata.Cli;

/// <summary>Option and argument declarations in one line each, so a command file reads as its list of options.</summary>
internal static class Opt
{
    public static Option<string> Required(string name, string description, string? valueName = null) =>
        new(name) { Description = description, Required = true, HelpName = valueName };

    public static Option<string?> Text(string name, string description, string? valueName = null) =>
        new(name) { Description = description, HelpName = valueName };

    public static Option<string> Text(string name, string dflt, string description, string? valueName = null) =>
        new(name) { Description = description, DefaultValueFactory = _ => dflt, HelpName = valueName };

    public static Option<int> Int(string name, int dflt, string description) =>
        new(name) { Description = description, DefaultValueFactory = _ => dflt };

    public static Option<int?> OptionalInt(string name, string description) => new(name) { Description = description };

    public static Option<long> Long(string name, long dflt, string description) =>
        new(name) { Description = description, DefaultValueFactory = _ => dflt };

    public static Option<long?> OptionalLong(string name, string description) => new(name) { Description = description };

    public static Option<double> Double(string name, double dflt, string description) =>
        new(name) { Description = description, DefaultValueFactory = _ => dflt };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>--device cpu|cuda, CPU by default.</summary>
    public static Option<string> Device() => Text("--device", "cpu", "where tensors live: cpu, cuda or cuda:N", "cpu|cuda");

    public static Argument<string[]> Many(string name, string description, int atLeast = 1) =>
        new(name) { Description = description, Arity = atLeast == 0 ? ArgumentArity.ZeroOrMore : ArgumentArity.OneOrMore };

    public static Argument<string> One(string name, string description) => new(name) { Description = description };
}
