// Documents from the inputs of a preparation, read as streams in a fixed order: text files (one document each, read
// in segments), JSON lines (a field of each line) and Parquet (a column of each row), plain or compressed with gzip
// (.gz) or zstd (.zst). Text is strict UTF-8: an invalid sequence is an error naming the file and its byte offset,
// or, when asked, a counted U+FFFD. By default the text is exactly the file's (a BOM is kept as U+FEFF, CR LF stays
// CR LF), so ids equal what Hugging Face tokenizers gives on the file's text; --strip-bom and --newlines lf change that.
using System.Buffers;
using System.IO.Compression;
using System.Text;
using Strata.Formats;
using Strata.Util;

namespace Strata.Data;

/// <summary>A document, or a segment of one (<see cref="Continues"/>): a long text file is read in segments cut after a
/// newline, which is exact when the tokenizer never merges across one.</summary>
/// <param name="Source">the file's path relative to the input it was found under (validation by --val-match, the split hash)</param>
/// <param name="Index">the document's number within its file (rows of JSONL and Parquet; 0 for a text file)</param>
/// <param name="Validation">whether the document goes to the validation split, when its reader decides it (a single file's tail)</param>
internal sealed record Document(int Input, string Source, long Index, string Text, bool Continues, bool? Validation = null);

internal enum InputKind { Text, JsonLines, Parquet }

/// <summary>How the preparation reads its inputs.</summary>
public sealed record ReadOptions
{
    /// <summary>JSONL and Parquet: the field or column that holds the text.</summary>
    public string Field { get; init; } = "text";
    public bool StripBom { get; init; }
    /// <summary>Turn CR LF and lone CR into LF.</summary>
    public bool NewlinesToLf { get; init; }
    public bool StripAnsiColour { get; init; }
    /// <summary>Replace invalid UTF-8 by U+FFFD (counted) instead of refusing it.</summary>
    public bool ReplaceInvalid { get; init; }
    /// <summary>Characters per text segment; longer text files are cut after a newline.</summary>
    public int SegmentChars { get; init; } = 8 << 20;
}

internal sealed class DocumentReader(ReadOptions options)
{
    private long _replacements;

    /// <summary>Invalid UTF-8 sequences replaced so far (with <see cref="ReadOptions.ReplaceInvalid"/>), over every
    /// thread reading with this reader.</summary>
    public long Replacements => Interlocked.Read(ref _replacements);

    public static (InputKind Kind, string Compression) KindOf(string path)
    {
        var name = Path.GetFileName(path).ToLowerInvariant();
        string compression = name.EndsWith(".gz") ? "gzip" : name.EndsWith(".zst") || name.EndsWith(".zstd") ? "zstd" : "none";
        if (compression != "none") name = Path.GetFileNameWithoutExtension(name);
        var kind = name.EndsWith(".jsonl") || name.EndsWith(".ndjson") || name.EndsWith(".json") ? InputKind.JsonLines
            : name.EndsWith(".parquet") ? InputKind.Parquet : InputKind.Text;
        if (kind == InputKind.Parquet && compression != "none") throw new StrataException(
            $"{path}: a compressed Parquet file (Parquet compresses its own pages)");
        return (kind, compression);
    }

    /// <summary>The documents of one file, in order.</summary>
    /// <param name="canCutAtNewline">whether the tokenizer never merges across a newline, so long text may be read in segments</param>
    public IEnumerable<Document> Read(int input, string path, string source, bool canCutAtNewline)
    {
        var (kind, compression) = KindOf(path);
        return kind switch
        {
            InputKind.JsonLines => JsonLines(input, path, source, compression),
            InputKind.Parquet => ParquetRows(input, path, source),
            _ => Text(input, path, source, compression, canCutAtNewline, 0, long.MaxValue, 0, null),
        };
    }

    /// <summary>A single uncompressed text file held out by position: its text up to the first newline at or after
    /// <paramref name="fraction"/>'s complement of its bytes is document 0 (training), the rest document 1 (validation).</summary>
    public IEnumerable<Document> ReadWithTail(int input, string path, string source, bool canCutAtNewline, double fraction)
    {
        long length = new FileInfo(path).Length, cut = (long)(length * (1 - fraction));
        using (var s = File.OpenRead(path))
        {
            s.Seek(cut, SeekOrigin.Begin);
            int b;
            while ((b = s.ReadByte()) >= 0 && b != '\n') cut++;
            if (b == '\n') cut++;
        }
        return Text(input, path, source, "none", canCutAtNewline, 0, cut, 0, false)
            .Concat(cut < length ? Text(input, path, source, "none", canCutAtNewline, cut, length, 1, true) : []);
    }

    private static Stream Open(string path, string compression)
    {
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return compression switch
        {
            "gzip" => new GzipMembers(file, path),
            "zstd" => new ZstdSharp.DecompressionStream(file, checkEndOfStream: true, leaveOpen: false),
            _ => file,
        };
    }

    /// <summary>Reads bytes from a (possibly decompressing) stream, turning a damaged stream into one error.</summary>
    private static int ReadSome(Stream s, Span<byte> buffer, string path, string compression)
    {
        try { return s.Read(buffer); }
        catch (Exception e) when (compression != "none" && e is InvalidDataException or ZstdSharp.ZstdException or EndOfStreamException or IOException)
        {
            throw new StrataException($"{path}: the {compression} stream is truncated or damaged");
        }
    }

    private string Clean(string text, bool first)
    {
        if (first && options.StripBom && text.StartsWith('\uFEFF')) text = text[1..];
        if (options.NewlinesToLf && text.Contains('\r')) text = text.Replace("\r\n", "\n").Replace('\r', '\n');
        if (options.StripAnsiColour) text = Corpus.StripAnsiColour(text);
        return text;
    }

    /// <summary>The text of bytes [<paramref name="from"/>, <paramref name="to"/>) of a file: one document, in segments.</summary>
    private IEnumerable<Document> Text(int input, string path, string source, string compression, bool canCutAtNewline, long from, long to,
        long index, bool? validation)
    {
        using var s = Open(path, compression);
        if (from > 0) s.Seek(from, SeekOrigin.Begin);
        if (compression == "none" && Whole(s, to - from) is { } whole)
        {
            yield return new Document(input, source, index, Clean(whole, from == 0), false, validation);
            yield break;
        }
        using var decoder = new Utf8Text(path, compression != "none", options.ReplaceInvalid);
        var pending = new StringBuilder();
        var chunk = ArrayPool<byte>.Shared.Rent(1 << 20);                               // pooled: a corpus may be many small files
        using var giveBack = new Returned<byte>(chunk);
        bool first = true;
        for (long offset = from; ;)
        {
            int want = (int)Math.Min(chunk.Length, to - offset);
            int n = want <= 0 ? 0 : ReadSome(s, chunk.AsSpan(0, want), path, compression);
            decoder.Append(chunk.AsSpan(0, n), offset, pending, final: n == 0);
            offset += n;
            Interlocked.Add(ref _replacements, decoder.TakeReplacements());
            while (pending.Length >= options.SegmentChars)
            {
                if (!canCutAtNewline)
                    throw new StrataException(
                        $"{path}: more than {options.SegmentChars:N0} characters, and this tokenizer may merge across newlines, so the file cannot " +
                            "be read in pieces: split it into documents");
                int cut = LastNewline(pending, pending.Length);
                if (cut < 0)
                {
                    // no newline yet: read on, within a bound
                    if (pending.Length > MaxLineChars) throw new StrataException($"{path}: a line longer than {MaxLineChars:N0} characters");
                    break;
                }
                var segment = pending.ToString(0, cut + 1);
                pending.Remove(0, cut + 1);
                yield return new Document(input, source, index, Clean(segment, first && from == 0), !first, validation);
                first = false;
            }
            if (n == 0) break;
        }
        if (pending.Length > 0 || first) yield return new Document(input, source, index, Clean(pending.ToString(), first && from == 0), !first, validation);
    }

    /// <summary>The text of the next <paramref name="length"/> bytes of a file (or up to its end) in one piece, when it
    /// is shorter than a segment and valid UTF-8; else null, the stream back where it was (the segments read it).</summary>
    private string? Whole(Stream s, long length)
    {
        long start = s.Position, size = Math.Min(length, s.Length - start);
        if (size >= options.SegmentChars) return null;
        int want = (int)size + (size < length ? 1 : 0);                                   // one more: the file did not grow
        var bytes = ArrayPool<byte>.Shared.Rent(want);
        try
        {
            int n = s.ReadAtLeast(bytes.AsSpan(0, want), want, throwOnEndOfStream: false);
            if (n == size) return Strict.GetString(bytes, 0, n);
        }
        catch (DecoderFallbackException) { }                                            // the segments name the offset
        finally { ArrayPool<byte>.Shared.Return(bytes); }
        s.Seek(start, SeekOrigin.Begin);
        return null;
    }

    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The longest line a text file may have (a segment ends only after a newline).</summary>
    private const int MaxLineChars = 64 << 20;

    private static int LastNewline(StringBuilder sb, int limit)
    {
        for (int i = Math.Min(limit, sb.Length) - 1; i >= 0; i--) if (sb[i] == '\n') return i;
        return -1;
    }

    private IEnumerable<Document> JsonLines(int input, string path, string source, string compression)
    {
        using var s = Open(path, compression);
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        using var giveBack = new Returned<byte>(buffer);
        var line = new ArrayBufferWriter<byte>();
        var field = new JsonLineField(options.Field);
        long offset = 0, lineStart = 0, lineNumber = 0, index = 0;
        const int MaxLine = 64 << 20;
        while (true)
        {
            int n = ReadSome(s, buffer.AsSpan(0, 1 << 20), path, compression);
            int start = 0;
            while (true)
            {
                int newline = buffer.AsSpan(start, n - start).IndexOf((byte)'\n');
                int i = newline >= 0 ? start + newline : n;
                bool endOfLine = newline >= 0 || n == 0;                                 // the end of the file ends the last line
                bool inBuffer = endOfLine && line.WrittenCount == 0;                      // read where it lies, uncopied
                if (i > start && !inBuffer) line.Write(buffer.AsSpan(start, i - start));
                if (line.WrittenCount > MaxLine) throw new StrataException($"{path}:{lineNumber + 1}: a line longer than {MaxLine:N0} bytes");
                if (!endOfLine) break;
                lineNumber++;
                var content = inBuffer ? buffer.AsMemory(start, i - start) : line.WrittenMemory;
                if (lineNumber == 1 && content.Span.StartsWith("\uFEFF"u8)) content = content[3..];        // a BOM, as pandas and jq read past it
                if (content.Span.ContainsAnyExcept(" \t\r"u8))                                            // blank lines are skipped, as they do
                {
                    var text = Field(field, content.Span, path, lineNumber, lineStart);
                    yield return new Document(input, source, index++, Clean(text, false), false);
                }
                line.ResetWrittenCount();
                lineStart = offset + i + 1;
                start = i + 1;
                if (n == 0) break;
            }
            offset += n;
            if (n == 0) break;
        }
    }

    private string Field(JsonLineField field, ReadOnlySpan<byte> bytes, string path, long lineNumber, long lineStart)
    {
        StrataException Refused(JsonLineField.InvalidLine e) => new($"{path}:{lineNumber}: {e.Message}");
        try { return field.Read(bytes); }
        catch (JsonLineField.InvalidLine e) when (System.Text.Unicode.Utf8.IsValid(bytes)) { throw Refused(e); }
        catch (JsonLineField.InvalidLine) { }                                       // not UTF-8: say where, or replace and read again
        if (!options.ReplaceInvalid) throw new StrataException($"{path}:{lineNumber}: invalid UTF-8 at byte offset {lineStart + InvalidAt(bytes)}");
        using var decoder = new Utf8Text(path, false, replace: true);
        var text = new StringBuilder();
        decoder.Append(bytes, lineStart, text, final: true);
        Interlocked.Add(ref _replacements, decoder.TakeReplacements());
        try { return field.Read(Encoding.UTF8.GetBytes(text.ToString())); }
        catch (JsonLineField.InvalidLine e) { throw Refused(e); }
    }

    private static int InvalidAt(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            var status = Rune.DecodeFromUtf8(bytes[i..], out _, out int consumed);
            if (status != OperationStatus.Done) return i;
            i += consumed;
        }
        return i;
    }

    private IEnumerable<Document> ParquetRows(int input, string path, string source)
    {
        ParquetGuard.Check(path);
        Parquet.ParquetReader reader;
        try { reader = Parquet.ParquetReader.CreateAsync(path).GetAwaiter().GetResult(); }
        catch (Exception e) when (e is not (StrataException or OutOfMemoryException)) { throw new StrataException(
            $"{path}: not a readable Parquet file ({e.GetType().Name})"); }
        try
        {
            // Parquet.Net builds the schema's fields when asked (each time), and refuses elements it cannot decode then
            Parquet.Schema.DataField[] fields;
            try { fields = reader.Schema.GetDataFields(); }
            catch (Exception e) when (e is not (StrataException or OutOfMemoryException)) { throw new StrataException(
                $"{path}: its schema is not readable ({e.GetType().Name})"); }
            var field = fields.FirstOrDefault(f => f.Name == options.Field && (f.ClrType == typeof(string) || f.ClrType == typeof(ReadOnlyMemory<char>)))
                ?? throw new StrataException(
                    $"{path}: no text column '{options.Field}' (columns: {string.Join(", ", fields.Select(f => f.Name))}; choose one with --field)");
            long index = 0;
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                string?[] values;
                try
                {
                    using var group = reader.OpenRowGroupReader(g);
                    if (group.RowCount > int.MaxValue) throw new StrataException($"{path}: row group {g} has {group.RowCount:N0} rows");
                    values = new string?[group.RowCount];
                    group.ReadAsync(field, values.AsMemory()!).AsTask().GetAwaiter().GetResult();
                }
                catch (Exception e) when (e is not (StrataException or OutOfMemoryException)) { throw new StrataException(
                    $"{path}: row group {g} is not readable ({e.GetType().Name})"); }
                foreach (var v in values)
                {
                    if (v is null) { index++; continue; }
                    yield return new Document(input, source, index++, Clean(v, false), false);
                }
            }
        }
        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }
}

/// <summary>Streaming strict UTF-8 decoding that knows the byte offset of every problem (or replaces and counts).</summary>
internal sealed class Utf8Text(string path, bool decompressed, bool replace) : IDisposable
{
    private readonly byte[] _carry = new byte[4];
    private int _carried;
    private long _replacements;
    private char[] _chars = ArrayPool<char>.Shared.Rent(1 << 20);
    private byte[] _joined = [];

    public long TakeReplacements() { var r = _replacements; _replacements = 0; return r; }

    /// <summary>Decodes <paramref name="bytes"/> (which start at <paramref name="offset"/> in the file) into <paramref name="into"/>.</summary>
    public void Append(ReadOnlySpan<byte> bytes, long offset, StringBuilder into, bool final)
    {
        if (_carried > 0)
        {
            Grow(ref _joined, _carried + bytes.Length);
            _carry.AsSpan(0, _carried).CopyTo(_joined);
            bytes.CopyTo(_joined.AsSpan(_carried));
            offset -= _carried;
            bytes = _joined.AsSpan(0, _carried + bytes.Length);
            _carried = 0;
        }
        Grow(ref _chars, bytes.Length + 1);
        int pos = 0;
        while (pos < bytes.Length)
        {
            var status = System.Text.Unicode.Utf8.ToUtf16(bytes[pos..], _chars, out int read, out int written, replaceInvalidSequences: false,
                isFinalBlock: final);
            into.Append(_chars, 0, written);
            pos += read;
            if (status == OperationStatus.Done) break;
            if (status == OperationStatus.NeedMoreData && !final)
            {
                _carried = bytes.Length - pos;
                bytes[pos..].CopyTo(_carry);
                break;
            }
            // an invalid sequence (or one cut short by the end of the file)
            if (!replace)
                throw new StrataException($"{path}: invalid UTF-8 at byte offset {offset + pos}{(decompressed ? " of its decompressed text" : "")}");
            Rune.DecodeFromUtf8(bytes[pos..], out _, out int bad);
            into.Append('\uFFFD');
            _replacements++;
            pos += Math.Max(1, bad);
        }
    }

    private static void Grow<T>(ref T[] buffer, int length)
    {
        if (buffer.Length >= length) return;
        if (buffer.Length > 0) ArrayPool<T>.Shared.Return(buffer);
        buffer = ArrayPool<T>.Shared.Rent(length);
    }

    public void Dispose()
    {
        ArrayPool<char>.Shared.Return(_chars);
        if (_joined.Length > 0) ArrayPool<byte>.Shared.Return(_joined);
        (_chars, _joined) = ([], []);
    }
}

/// <summary>Gives a pooled array back to the shared pool when disposed (in an iterator: when it ends or is abandoned).</summary>
internal readonly struct Returned<T>(T[] array) : IDisposable
{
    public void Dispose() => ArrayPool<T>.Shared.Return(array);
}
