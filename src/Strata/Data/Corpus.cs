using System.Buffers;
using System.Text;
using System.Text.Unicode;
using Strata.Util;

namespace Strata.Data;

/// <summary>A text file of a corpus: its path (relative to the input it was found under) and its text.</summary>
internal sealed record CorpusDocument(string Path, string Name, string Text);

/// <summary>Finds and reads corpus files: strict UTF-8, an error naming the file and byte offset otherwise.</summary>
internal static partial class Corpus
{
    /// <summary>Files named by <paramref name="inputs"/>: files as given, folders searched recursively for
    /// <paramref name="pattern"/> (minus relative paths matching <paramref name="exclude"/>), in ordinal order of path.
    /// The walk follows links but visits every folder once (a link loop ends it), and skips what is not a regular file
    /// (FIFOs, devices and sockets would block or never end; a dangling link leads nowhere), telling
    /// <paramref name="skipped"/> each one. A file of the kernel's pseudo-filesystems (/proc, /sys, /dev), reached
    /// directly or through a link, is refused: it is not text anyone prepared (/proc/self/environ is the environment).</summary>
    public static IReadOnlyList<(string Path, string Name)> Find(IEnumerable<string> inputs, string pattern = PrepareOptions.AnyText, string? exclude = null,
        Action<string>? skipped = null)
    {
        System.Text.RegularExpressions.Regex? skip;
        try
        {
            skip = exclude is null ? null : new System.Text.RegularExpressions.Regex(exclude,
                System.Text.RegularExpressions.RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException) { throw new StrataException($"--exclude: '{exclude}' is not a regular expression"); }
        var found = new List<(string, string)>();
        foreach (var input in inputs)
        {
            switch (FileKind.Of(input).Kind)
            {
                case FileKind.Kind.File:
                    found.Add((input, System.IO.Path.GetFileName(input)));
                    break;
                case FileKind.Kind.Directory:
                    var files = Walk(input, pattern, skipped)
                        .Select(f => (f, System.IO.Path.GetRelativePath(input, f)))
                        .Where(x => skip is null || !Matches(skip, x.Item2.Replace('\\', '/')))
                        .OrderBy(x => x.Item2, StringComparer.Ordinal).ToList();
                    if (files.Count == 0) throw new StrataException($"{input}: no files matching '{pattern}'");
                    found.AddRange(files);
                    break;
                case FileKind.Kind.Other:
                    throw new StrataException($"{input}: not a regular file or folder (a FIFO, device or socket)");
                default:
                    throw new StrataException($"{input}: no such file or folder");
            }
        }
        if (found.Count == 0) throw new StrataException("no input files given");
        foreach (var (path, _) in found) RequireOrdinary(path);
        return found;
    }

    private static bool Matches(System.Text.RegularExpressions.Regex re, string path)
    {
        try { return re.IsMatch(path); }
        catch (System.Text.RegularExpressions.RegexMatchTimeoutException) { throw new StrataException($"--exclude: '{re}' takes too long to match '{path}'"); }
    }

    private static readonly string[] PseudoFileSystems = ["/proc/", "/sys/", "/dev/"];

    /// <summary>Refuses a file whose real path (links resolved) is on a pseudo-filesystem.</summary>
    private static void RequireOrdinary(string path)
    {
        var real = System.IO.Path.GetFullPath(path);
        try { real = new FileInfo(real).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? real; }
        catch (IOException) { }
        if (PseudoFileSystems.Any(p => real.StartsWith(p, StringComparison.Ordinal)))
            throw new StrataException($"{path}: {(real == System.IO.Path.GetFullPath(path) ? "is" : $"leads to {real},")} a file of the kernel's " +
                                      "pseudo-filesystems, not a corpus file");
    }

    /// <summary>Whether <paramref name="name"/> matches one of the comma-separated globs of <paramref name="pattern"/>,
    /// itself or without a .gz / .zst ending ("*.txt" takes a.txt.gz).</summary>
    internal static bool NameMatches(string pattern, string name)
    {
        var plain = name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? name[..^3]
            : name.EndsWith(".zst", StringComparison.OrdinalIgnoreCase) ? name[..^4] : name;
        foreach (var glob in pattern.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            if (System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(glob, name) ||
                System.IO.Enumeration.FileSystemName.MatchesSimpleExpression(glob, plain)) return true;
        return false;
    }

    /// <summary>Regular files under <paramref name="root"/> whose names match <paramref name="pattern"/>; each folder
    /// (by device and inode) is read once; anything else that matches is told to <paramref name="skipped"/>.</summary>
    private static IEnumerable<string> Walk(string root, string pattern, Action<string>? skipped)
    {
        var seen = new HashSet<(ulong, ulong)>();
        var pending = new Stack<string>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            var (_, id) = FileKind.Of(dir);
            if (id != default && !seen.Add(id)) continue;                               // reached again through a link
            IEnumerable<string> entries;
            try { entries = Directory.EnumerateFileSystemEntries(dir).ToList(); }
            catch (UnauthorizedAccessException) { throw new StrataException($"{dir}: permission denied"); }
            foreach (var entry in entries)
            {
                switch (FileKind.Of(entry).Kind)
                {
                    case FileKind.Kind.Directory: pending.Push(entry); break;
                    case FileKind.Kind.File when NameMatches(pattern, System.IO.Path.GetFileName(entry)):
                        yield return entry;
                        break;
                    case FileKind.Kind.Other or FileKind.Kind.Missing when NameMatches(pattern, System.IO.Path.GetFileName(entry)):
                        skipped?.Invoke(FileKind.Of(entry).Kind == FileKind.Kind.Missing ? $"{entry} (a link to nothing)"
                            : $"{entry} (not a regular file: a FIFO, device or socket)");
                        break;
                }
            }
        }
    }

    /// <summary>Decodes UTF-8 strictly (a leading BOM is dropped). Invalid bytes and encoded surrogates are refused with
    /// their byte offset.</summary>
    public static string ReadText(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new StrataException($"{path}: cannot read ({e.Message})"); }
        return DecodeUtf8(bytes, path);
    }

    public static string DecodeUtf8(ReadOnlySpan<byte> bytes, string source)
    {
        int bom = bytes.StartsWith("\uFEFF"u8) ? 3 : 0;
        bytes = bytes[bom..];
        var chars = new char[bytes.Length];
        var status = Utf8.ToUtf16(bytes, chars, out int read, out int written, replaceInvalidSequences: false);
        if (status != OperationStatus.Done)
            throw new StrataException($"{source}: invalid UTF-8 at byte offset {read + bom}{Describe(bytes, read)}");
        return new string(chars, 0, written);
    }

    private static string Describe(ReadOnlySpan<byte> bytes, int at)
    {
        var shown = bytes.Slice(at, Math.Min(4, bytes.Length - at)).ToArray();
        return shown.Length == 0 ? " (truncated sequence at the end)" : $" (bytes {Convert.ToHexString(shown)})";
    }

    public static string StripAnsiColour(string text) => AnsiColour().Replace(text, "");

    [System.Text.RegularExpressions.GeneratedRegex(@"\x1b\[[0-9;]*m")] private static partial System.Text.RegularExpressions.Regex AnsiColour();

    public static CorpusDocument Read((string Path, string Name) file) => new(file.Path, file.Name, ReadText(file.Path));
}
