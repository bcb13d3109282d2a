
namespace Strata.Util;

/// <summary>
/// An exclusive lock on an output folder (a run, a dataset, a study): the file <c>.lock</c> in it, held open with an
/// exclusive advisory lock (flock, which .NET takes for FileShare.None on Unix) for as long as the work runs. The kernel drops the lock when the process ends, however
/// it ends, so a lock left by a killed process is simply taken over. The file records who holds it, so a second process
/// is refused by name.
/// </summary>
public sealed class FolderLock : IDisposable
{
    public const string FileName = ".lock";
    private readonly FileStream _stream;

    private FolderLock(FileStream stream, string? previous) => (_stream, TakenOver) = (stream, previous);

    /// <summary>Who held the lock before, when the previous holder had died without releasing it (null otherwise).</summary>
    public string? TakenOver { get; }

    /// <summary>Takes the lock on <paramref name="folder"/> (created if missing), or refuses naming the holder. The
    /// folder's leftover temporary files (AtomicFile's "*.tmp-*" of interrupted writes) are removed once it is held.</summary>
    public static FolderLock Acquire(string folder, string purpose)
    {
        if (File.Exists(folder)) throw new StrataException($"{folder}: is a file, not a folder");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, FileName);
        RefuseLink(path);
        string? previous = File.Exists(path) ? ReadHolder(path) : null;
        FileStream stream;
        try { stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException) when (File.Exists(path))
        {
            throw new StrataException($"{folder} is in use by {ReadHolder(path) ?? "another process"}: wait for it to finish, or stop it");
        }
        var holder = $"process {Environment.ProcessId} on {Environment.MachineName} ({purpose}, since {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC)";
        stream.SetLength(0);
        var bytes = System.Text.Encoding.UTF8.GetBytes(holder + "\n");
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
        var l = new FolderLock(stream, string.IsNullOrWhiteSpace(previous) ? null : previous.Trim());
        AtomicFile.RemoveLeftovers(folder);
        return l;
    }

    /// <summary>What the lock file says about its holder (readable while the holder has it locked).</summary>
    private static string? ReadHolder(string path)
    {
        try
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var buffer = new byte[512];
            int n = s.Read(buffer);
            var text = System.Text.Encoding.UTF8.GetString(buffer, 0, n).Split('\n')[0].Trim();
            return text.Length == 0 ? null : text;
        }
        catch (IOException) { return null; }
    }

    /// <summary>Refuses to write through a symbolic link planted where Strata writes a file of its own.</summary>
    public static void RefuseLink(string path)
    {
        if (new FileInfo(path).LinkTarget is not null)
            throw new StrataException($"{path}: is a symbolic link; Strata does not write through links (remove it)");
    }

    /// <summary>Releases the lock. The file stays (deleting a flock'd file races with a process opening it), emptied:
    /// a lock file that still names a holder when it is next taken was left by a process that died.</summary>
    public void Dispose()
    {
        try { _stream.SetLength(0); } catch (IOException) { }
        _stream.Dispose();
    }
}
