
namespace Strata.Util;

/// <summary>
/// An exclusive lock on an output folder (a run, a dataset, a study): the file <c>.lock</c> in it, held open with an
/// exclusive advisory lock (flock, which .NET takes for FileShare.None on Unix) for as long as the work runs. The kernel
/// drops the lock when the process ends, however it ends, so a lock left by a killed process is simply taken over.
/// Who holds it is written beside it in <c>.lock.holder</c> (a locked file cannot be read by others), so a second
/// process is refused by name; a holder file still present when the lock is free was left by a process that died.
/// </summary>
internal sealed class FolderLock : IDisposable
{
    public const string FileName = ".lock", HolderFileName = ".lock.holder";
    private readonly FileStream _stream;
    private readonly string _holderPath;

    private FolderLock(FileStream stream, string holderPath, string? previous) => (_stream, _holderPath, TakenOver) = (stream, holderPath, previous);

    /// <summary>Who held the lock before, when the previous holder had died without releasing it (null otherwise).</summary>
    public string? TakenOver { get; }

    /// <summary>Takes the lock on <paramref name="folder"/> (created if missing), or refuses naming the holder. The
    /// folder's leftover temporary files (AtomicFile's "*.tmp-*" of interrupted writes) are removed once it is held.</summary>
    public static FolderLock Acquire(string folder, string purpose)
    {
        if (File.Exists(folder)) throw new StrataException($"{folder}: is a file, not a folder");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, FileName);
        var holderPath = Path.Combine(folder, HolderFileName);
        RefuseLink(path);
        RefuseLink(holderPath);
        FileStream stream;
        try { stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException) when (File.Exists(path))
        {
            throw new StrataException($"{folder} is in use by {ReadHolder(holderPath) ?? "another process"}: wait for it to finish, or stop it");
        }
        var previous = ReadHolder(holderPath);
        AtomicFile.WriteAllText(holderPath,
            $"process {Environment.ProcessId} on {Environment.MachineName} ({purpose}, since {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC)\n");
        var l = new FolderLock(stream, holderPath, previous);
        AtomicFile.RemoveLeftovers(folder);
        return l;
    }

    private static string? ReadHolder(string holderPath)
    {
        try
        {
            if (!File.Exists(holderPath) || new FileInfo(holderPath).Length > 4096) return null;
            var text = File.ReadAllText(holderPath).Split('\n')[0].Trim();
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

    /// <summary>Releases the lock: the holder file goes first (while the lock is still held), then the lock. The lock
    /// file itself stays (deleting a flock'd file races with a process opening it).</summary>
    public void Dispose()
    {
        try { File.Delete(_holderPath); } catch (IOException) { }
        _stream.Dispose();
    }
}
