using Strata.Util;
using Xunit;

namespace Strata.Tests;

[Collection("torch")]
public class NativeAllocatorTests
{
    private const ulong MiB = 1 << 20;

    [Fact]
    public void The_heap_is_trimmed_once_it_has_grown_by_a_quarter_and_256_MiB()
    {
        Assert.False(NativeAllocator.Grown(800 * MiB, 800 * MiB));
        Assert.False(NativeAllocator.Grown(800 * MiB + 255 * MiB, 800 * MiB));                  // a quarter, not 256 MiB
        Assert.True(NativeAllocator.Grown(800 * MiB + 256 * MiB, 800 * MiB));
        Assert.False(NativeAllocator.Grown(2000 * MiB + 499 * MiB, 2000 * MiB));                // 256 MiB, not a quarter
        Assert.True(NativeAllocator.Grown(2500 * MiB, 2000 * MiB));
        // this process's heap, right after a look at it, has not grown: it is left as it is
        Assert.NotNull(NativeAllocator.HeapBytes());
        NativeAllocator.TrimIfGrown();
        Assert.False(NativeAllocator.TrimIfGrown());
    }
}
