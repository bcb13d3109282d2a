using System.Runtime.InteropServices;

namespace Strata.Util;

/// <summary>
/// libtorch's CPU allocator takes every tensor from glibc malloc, which serves blocks over 32 MB with fresh mmaps and
/// returns them at free. A step of a 65,536-way head allocates and frees several such blocks (the [B*T, V] logits and
/// their gradients), so the kernel zeroes hundreds of MB of new pages every step. Keeping freed memory in the heap
/// (one arena, no mmap for large blocks, no trimming) made a d=128 training step 1.7x faster here (docs/BENCHMARKS.md).
/// </summary>
internal static class NativeAllocator
{
    private const int M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4, M_ARENA_MAX = -8;

    [DllImport("libc.so.6", EntryPoint = "mallopt")]
    private static extern int Mallopt(int param, int value);

    [DllImport("libc.so.6", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    /// <summary>Returns the pages of freed blocks to the kernel (glibc malloc_trim). Kept memory fragments over
    /// time (the heap grew by 0.5-1 GiB every few dozen steps of the demo without it), so the trainer trims every
    /// few steps: resident memory stays near what the steps need, at the cost of re-faulting pages once per trim.</summary>
    public static void Trim()
    {
        if (!_done) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    private static bool _done;

    /// <summary>Applies the setting once per process (glibc on Linux only; elsewhere nothing happens). Set
    /// STRATA_MALLOC_DEFAULTS=1 to leave glibc as it is.</summary>
    public static void KeepFreedMemory()
    {
        if (_done || !OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("STRATA_MALLOC_DEFAULTS") == "1") return;
        _done = true;
        try
        {
            Mallopt(M_ARENA_MAX, 1);         // other threads' arenas would still mmap blocks over 64 MB
            Mallopt(M_MMAP_MAX, 0);
            Mallopt(M_TRIM_THRESHOLD, -1);   // glibc reads it as size_t: never trim
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // not glibc (musl, ...): keep its defaults
        }
    }
}
