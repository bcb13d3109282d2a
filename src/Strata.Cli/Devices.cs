using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Cli;

public static class Devices
{
    /// <summary>True when <paramref name="output"/> is the console and the console is a terminal (progress bars redraw in place).</summary>
    public static bool IsTerminal(TextWriter output) => ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;

    /// <summary>The device named by --device (cpu by default). cuda needs a CUDA libtorch (README: "Other platforms").</summary>
    public static Device Parse(string? name)
    {
        switch (name ?? "cpu")
        {
            case "cpu":
                return CPU;
            case "cuda":
                try { torch.InitializeDeviceType(DeviceType.CUDA); }
                catch (Exception e) { throw new StrataException($"--device cuda: CUDA could not be initialised ({e.Message.Split('\n')[0]}); this build references the CPU libtorch, see README 'Other platforms'"); }
                if (!torch.cuda.is_available()) throw new StrataException("--device cuda: no CUDA device is available (this build references the CPU libtorch; see README 'Other platforms')");
                return CUDA;
            default:
                throw new StrataException($"--device: expected cpu or cuda, got '{name}'");
        }
    }
}
