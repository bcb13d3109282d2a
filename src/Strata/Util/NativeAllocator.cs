using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

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

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct HeapInfo
    {
        public readonly nuint Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
    }

    [DllImport("libc.so.6", EntryPoint = "mallinfo2")]
    private static extern HeapInfo MallInfo2();

    /// <summary>The heap's size (glibc mallinfo2's arena: every byte taken from the kernel, as large blocks are not
    /// mmapped) after the last trim, or when first read.</summary>
    private static ulong _heapAtTrim;

    /// <summary>The least growth of the heap since the last trim that makes <see cref="TrimIfGrown"/> trim: a quarter of
    /// its size then, and at least this.</summary>
    public const ulong TrimGrowth = 256UL << 20;

    /// <summary>The heap's size in bytes (mallinfo2's arena), or null where that cannot be read.</summary>
    public static ulong? HeapBytes()
    {
        try { return MallInfo2().Arena; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }

    /// <summary>Returns the pages of freed blocks to the kernel (glibc malloc_trim) when the heap has grown by a quarter,
    /// and by at least <see cref="TrimGrowth"/>, since the last trim (or the first call); true when it trimmed. Kept
    /// memory can fragment, so that blocks of one size no longer fit where the last ones were and the heap grows by
    /// them step after step; then trimming bounds the resident set. A trim costs the next step its pages again: on a
    /// 2-core virtual machine a d=256 bf16 step after one took 1.25 s against 0.51 s, faulting in 400 MB at about 7 us
    /// a page, and trimming every 10 steps made the demo plan 7% slower in bf16 (docs/BENCHMARKS.md), so a heap that
    /// stays the same size is left alone. Without mallinfo2 (glibc before 2.33) it always trims.</summary>
    public static bool TrimIfGrown()
    {
        if (!_done) return false;
        if (HeapBytes() is not { } heap)
        {
            Trim();                                                                       // no mallinfo2: as before it
            return true;
        }
        if (_heapAtTrim == 0) _heapAtTrim = heap;
        if (!Grown(heap, _heapAtTrim)) return false;
        Trim();
        _heapAtTrim = HeapBytes() ?? heap;
        return true;
    }

    /// <summary>Whether a heap of <paramref name="heap"/> bytes has grown enough past <paramref name="mark"/> to trim.</summary>
    internal static bool Grown(ulong heap, ulong mark) => heap >= mark + Math.Max(TrimGrowth, mark / 4);

    /// <summary>Returns the pages of freed blocks to the kernel now (a benchmark's reading of one step's own peak).</summary>
    public static void Trim()
    {
        if (!_done) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    /// <summary>Collects the managed heap and waits for the finalizers it queued, when <paramref name="device"/> is the
    /// CPU. TorchSharp frees some native objects only in their finalizers: an autograd context, an index, and any Scalar
    /// not disposed (before STRATA002 every <c>mul_(0.5)</c>, <c>loss / n</c>, <c>a + b</c> made one). A training step or
    /// an evaluation batch makes few managed objects, so the collector left to its own pace runs every ten or so of
    /// them, and meanwhile these small blocks sit in the holes that the large blocks left in the heap: a d=512 training
    /// step then found no hole for the head's [V, C] gradient and took 128 MiB of fresh pages every step (1.4-1.6 s
    /// against 1.04-1.1 s a bf16 step on a 2-core virtual machine). With Strata's Scalars disposed that mostly went away
    /// by itself (48-586 faults a step without the collection, an occasional 16-32 MiB), and the collection keeps it so
    /// for what TorchSharp still leaves to finalizers. It costs about 1-4 ms (a full blocking collection of a small
    /// managed heap). On a GPU the large blocks live in CUDA's caching allocator, which these small host blocks cannot
    /// fragment, so there it does nothing.</summary>
    public static void FreeFinalizedObjects(Device device)
    {
        if (device.type != DeviceType.CPU) return;
        GC.Collect();
        GC.WaitForPendingFinalizers();
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
