using Strata.Util;
using TorchSharp;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class NativeAllocatorTests
{
    [Fact]
    public void Freed_memory_is_kept_and_returned_to_the_kernel_once_the_heap_has_grown()
    {
        NativeAllocator.TrimIfGrown();                                   // the heap as it is now is the mark
        Assert.False(NativeAllocator.TrimIfGrown());                     // it has not grown since
        // blocks of 16 MiB, together more than a quarter of the heap and 512 MiB: the heap grows by them (blocks under
        // 64 MiB, as a thread of glibc's other arenas would map a larger one on its own and unmap it when freed)
        const long Block = 4L << 20;                                     // floats
        int count = (int)(NativeAllocator.HeapBytes()!.Value / 4 / (Block * 4)) + 32;
        double before = PeakMemory.CurrentMib(), mib = count * Block * 4 / 1048576.0;
        var blocks = Enumerable.Range(0, count).Select(_ => torch.ones(Block)).ToList();
        foreach (var b in blocks) b.Dispose();
        double kept = PeakMemory.CurrentMib();
        Assert.True(kept - before >= 0.5 * mib, $"the freed {mib:F0} MiB stayed resident: {before:F0} -> {kept:F0} MiB");
        Assert.True(NativeAllocator.TrimIfGrown(), "the heap grew, so it is trimmed");
        double trimmed = PeakMemory.CurrentMib();
        Assert.True(kept - trimmed >= 0.5 * mib, $"the trim returned the freed blocks: {kept:F0} -> {trimmed:F0} MiB");
        Assert.False(NativeAllocator.TrimIfGrown());                     // the mark is the heap after the trim
    }
}
