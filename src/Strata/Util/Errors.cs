using System.Text;

namespace Strata.Util;

/// <summary>The one error path: what a user can cause (input, disk, permissions, signals) becomes one line; anything
/// else is a bug, reported in one line with the path of a log that holds the trace.</summary>
internal static class Errors
{
    /// <summary>The one-line message of an error the user can act on, or null for an internal fault.</summary>
    public static string? Describe(Exception e) => e switch
    {
        StrataException s => FirstLine(s.Message),
        UnauthorizedAccessException u => FirstLine(u.Message) + " (permission denied)",
        // disk full, read-only file system, a path that names a file where a folder is needed, ...: .NET names the path
        IOException io => FirstLine(io.Message),
        AggregateException { InnerExceptions.Count: 1 } a => Describe(a.InnerExceptions[0]),
        OutOfMemoryException => "out of memory: the model, batch or file is too large for this machine",
        System.Runtime.InteropServices.ExternalException x when x.Message.Contains("allocate", StringComparison.OrdinalIgnoreCase)
            => $"out of memory ({FirstLine(x.Message)}): the model or batch is too large for this machine",
        _ => null,
    };

    public static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].TrimEnd('\r');
        return line.Length > 1000 ? line[..1000] + "..." : line;
    }

    /// <summary>Writes the exception's trace to a fresh log file (in the temp folder) and returns its path.</summary>
    public static string WriteCrashLog(Exception e, IEnumerable<string> args)
    {
        var path = Path.Combine(Path.GetTempPath(), $"strata-fault-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log");
        try
        {
            var text = new StringBuilder()
                .AppendLine($"strata {typeof(Errors).Assembly.GetName().Version} on {Environment.OSVersion}, .NET {Environment.Version}")
                .AppendLine($"arguments: {string.Join(' ', args)}")
                .AppendLine(e.ToString()).ToString();
            AtomicFile.WriteAllText(path, text);
            return path;
        }
        catch (Exception)
        {
            return "(no log: the temp folder is not writable)";
        }
    }
}
