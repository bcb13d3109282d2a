using System.Buffers;
using System.Text;
using System.Text.Unicode;
using Strata.Util;

namespace Strata.Data;

/// <summary>A text file of a corpus: its path (relative to the input it was found under) and its text.</summary>
public sealed record CorpusDocument(string Path, string Name, string Text);

/// <summary>Finds and reads corpus files: strict UTF-8, an error naming the file and byte offset otherwise.</summary>
public static partial class Corpus
{
    /// <summary>Files named by <paramref name="inputs"/>: files as given, folders searched recursively for
    /// <paramref name="pattern"/> (minus relative paths matching <paramref name="exclude"/>), in ordinal order of path.</summary>
    public static IReadOnlyList<(string Path, string Name)> Find(IEnumerable<string> inputs, string pattern = "*.txt", string? exclude = null)
    {
        var skip = exclude is null ? null : new System.Text.RegularExpressions.Regex(exclude, System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        var found = new List<(string, string)>();
        foreach (var input in inputs)
        {
            if (File.Exists(input)) found.Add((input, System.IO.Path.GetFileName(input)));
            else if (Directory.Exists(input))
            {
                var files = Directory.EnumerateFiles(input, pattern, SearchOption.AllDirectories)
                    .Select(f => (f, System.IO.Path.GetRelativePath(input, f)))
                    .Where(x => skip is null || !skip.IsMatch(x.Item2.Replace('\\', '/')))
                    .OrderBy(x => x.Item2, StringComparer.Ordinal).ToList();
                if (files.Count == 0) throw new StrataException($"{input}: no files matching '{pattern}'");
                found.AddRange(files);
            }
            else throw new StrataException($"{input}: no such file or folder");
        }
        if (found.Count == 0) throw new StrataException("no input files given");
        return found;
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
