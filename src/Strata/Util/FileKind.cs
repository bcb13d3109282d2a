using System.Runtime.InteropServices;

namespace Strata.Util;

/// <summary>What a path is, by statx(2) (layout-stable across architectures): a regular file, a folder, or something
/// a corpus walk must not open (a FIFO blocks a reader forever, a device never ends). Off Linux, or where statx is
/// missing, paths are judged by .NET alone (files and folders only).</summary>
internal static class FileKind
{
    public enum Kind { Missing, File, Directory, Other }

    /// <summary>The kind of <paramref name="path"/> (links followed) and the (device, inode) that identify it.</summary>
    public static (Kind Kind, (ulong Device, ulong Inode) Id) Of(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                var buffer = new byte[256];
                if (Statx(-100 /* AT_FDCWD */, path, 0, 0x1 | 0x100 /* STATX_TYPE | STATX_INO */, buffer) == 0)
                {
                    int mode = BitConverter.ToUInt16(buffer, 28) & 0xF000;                    // stx_mode
                    ulong inode = BitConverter.ToUInt64(buffer, 32);                           // stx_ino
                    ulong device = (ulong)BitConverter.ToUInt32(buffer, 136) << 32 | BitConverter.ToUInt32(buffer, 140);   // stx_dev_major, minor
                    var kind = mode switch { 0x8000 => Kind.File, 0x4000 => Kind.Directory, _ => Kind.Other };
                    return (kind, (device, inode));
                }
                return (Kind.Missing, default);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        }
        return (File.Exists(path) ? Kind.File : Directory.Exists(path) ? Kind.Directory : Kind.Missing, default);
    }

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, string path, int flags, uint mask, byte[] buffer);
}
