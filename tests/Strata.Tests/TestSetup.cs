using System.Runtime.CompilerServices;
using Xunit;

namespace Strata.Tests;

internal static class TestSetup
{
    [ModuleInitializer]
    internal static void Init()
    {
        Strata.Util.NativeAllocator.KeepFreedMemory();
        Strata.Util.OpenMpWaiting.SpinBriefly();
    }
}

/// <summary>Tests that touch libtorch's global state (seeds, threads) run one at a time.</summary>
[CollectionDefinition("torch", DisableParallelization = true)]
public sealed class TorchCollection;
