using System.Globalization;
using Strata.Util;

namespace Strata.Cli;

/// <summary>Command-line arguments: positionals, <c>--name value</c> options and <c>--flag</c> switches. Every option
/// a command reads is declared; anything else is refused with its name.</summary>
public sealed class Args
{
    private readonly Dictionary<string, string?> _options = new();
    private readonly HashSet<string> _read = new();

    public Args(IEnumerable<string> args, IReadOnlySet<string> flags)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                var eq = a.IndexOf('=');
                if (eq > 0) { _options[a[2..eq]] = a[(eq + 1)..]; continue; }
                var name = a[2..];
                if (flags.Contains(name)) _options[name] = null;
                else if (i + 1 < list.Count) _options[name] = list[++i];
                else throw new StrataException($"--{name}: a value is required");
            }
            else Positionals.Add(a);
        }
    }

    public List<string> Positionals { get; } = new();

    public bool Flag(string name) { _read.Add(name); return _options.ContainsKey(name); }

    public string? Get(string name) { _read.Add(name); return _options.TryGetValue(name, out var v) ? v : null; }

    public string Require(string name) => Get(name) ?? throw new StrataException($"--{name} is required");

    public double Double(string name, double dflt) => Get(name) is { } s
        ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw new StrataException($"--{name}: expected a number, got '{s}'")
        : dflt;

    public long Long(string name, long dflt) => Get(name) is { } s
        ? long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new StrataException($"--{name}: expected an integer, got '{s}'")
        : dflt;

    public int Int(string name, int dflt) => checked((int)Long(name, dflt));

    /// <summary>Refuses options the command did not read (call after reading them all).</summary>
    public void RejectUnknown()
    {
        var unknown = _options.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0) throw new StrataException($"unknown option --{unknown[0]}");
    }
}
