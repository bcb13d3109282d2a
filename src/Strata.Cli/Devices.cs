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
        name ??= "cpu";
        if (name == "cpu") return CPU;
        int index = 0;
        if (name != "cuda" && !(name.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(name[5..], out index) && index >= 0))
            throw new StrataException($"--device: expected cpu, cuda or cuda:N, got '{name}'");
        try { torch.InitializeDeviceType(DeviceType.CUDA); }
        catch (Exception e) { throw new StrataException(
            $"--device {name}: CUDA could not be initialised ({e.Message.Split('\n')[0]}); this build references the CPU libtorch, see README " +
                "'Other platforms'"); }
        if (!torch.cuda.is_available()) throw new StrataException(
            $"--device {name}: no CUDA device is available (this build references the CPU libtorch; see README 'Other platforms')");
        if (index >= torch.cuda.device_count()) throw new StrataException($"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)");
        return new Device(DeviceType.CUDA, index);
    }
}
