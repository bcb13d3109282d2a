using System.Runtime.InteropServices;

namespace Strata.Util;

/// <summary>
/// libtorch's CPU operations run on GNU OpenMP (libgomp), whose threads busy-wait after each parallel region before
/// they sleep: 300,000 spins by default (GOMP_SPINCOUNT). Between libtorch's operations a training step runs work on
/// .NET threads (the bf16 head's softmax pass and gradient accumulation, the attention kernel, the optimizer's pass, the
/// garbage collector), and while OpenMP's threads spin those compete with them for the cores. With 10,000 spins the
/// bf16 step ran 15-20% faster and fp32 7-12% (Strata.Bench train, alternated, docs/BENCHMARKS.md); back-to-back
/// operations, as in decoding, follow each other well within that wait.
/// </summary>
internal static class OpenMpWaiting
{
    /// <summary>The spin count set when the user has set neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY.</summary>
    public const string Spins = "10000";

    [DllImport("libc.so.6", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    [DllImport("libc.so.6", EntryPoint = "getenv")]
    private static extern nint GetEnv(string name);

    /// <summary>Sets GOMP_SPINCOUNT in the process's native environment, where libgomp reads it once, as libtorch loads:
    /// so call it before the first tensor (Linux with glibc only; elsewhere nothing happens). A GOMP_SPINCOUNT or
    /// OMP_WAIT_POLICY already set is left as it is.</summary>
    public static void SpinBriefly()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            if (GetEnv("GOMP_SPINCOUNT") == 0 && GetEnv("OMP_WAIT_POLICY") == 0) SetEnv("GOMP_SPINCOUNT", Spins, 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // not glibc: leave OpenMP's defaults
        }
    }

    /// <summary>GOMP_SPINCOUNT as the process's native environment holds it, or null.</summary>
    public static string? SpinCount() =>
        OperatingSystem.IsLinux() && GetEnv("GOMP_SPINCOUNT") is var p && p != 0 ? Marshal.PtrToStringUTF8(p) : null;
}
