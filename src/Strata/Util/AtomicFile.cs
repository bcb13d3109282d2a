namespace Strata.Util;

/// <summary>Writes files whole or not at all: into a temporary sibling in the same folder, created exclusively under an
/// unpredictable name (so never through a planted file or link), flushed, then renamed over the target (rename
/// replaces a link at the target rather than following it).</summary>
internal static class AtomicFile
{
    /// <summary>The marker in temporary names: "{target}.tmp-{pid}-{guid}".</summary>
    public const string TempMarker = ".tmp-";

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> InFlight = new();

    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + $"{TempMarker}{Environment.ProcessId}-{Guid.NewGuid():N}";
        InFlight[tmp] = 0;
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            KillPoint.Here("atomic.before-rename");
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
            InFlight.TryRemove(tmp, out _);
        }
    }

    /// <summary>Deletes the temporary files of writes still in progress (the process is about to be stopped by a signal).</summary>
    public static void AbandonInFlight()
    {
        foreach (var tmp in InFlight.Keys)
            try { File.Delete(tmp); } catch (IOException) { }
    }

    /// <summary>Removes the temporary files interrupted writes left in <paramref name="folder"/> (call with the folder
    /// locked, so no live writer's file is touched); returns how many.</summary>
    public static int RemoveLeftovers(string folder)
    {
        int n = 0;
        foreach (var f in Directory.EnumerateFiles(folder, "*" + TempMarker + "*"))
        {
            try { File.Delete(f); n++; }
            catch (IOException) { }
        }
        return n;
    }

    /// <summary>Copies <paramref name="from"/> to <paramref name="to"/> whole or not at all.</summary>
    public static void Copy(string from, string to) => Write(to, s => { using var src = File.OpenRead(from); src.CopyTo(s); });

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { var b = new System.Text.UTF8Encoding(false).GetBytes(text); s.Write(b); });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, s => s.Write(copy));
    }
}
