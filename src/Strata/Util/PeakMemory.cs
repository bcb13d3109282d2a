namespace Strata.Util;

/// <summary>Peak resident memory of this process, resettable on Linux (VmHWM, reset by writing 5 to
/// /proc/self/clear_refs), so each training stage can report its own peak.</summary>
internal static class PeakMemory
{
    public static void Reset()
    {
        try { if (OperatingSystem.IsLinux()) File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>Peak resident set since the last reset (or since start), in MiB.</summary>
    public static double Mib() => Status("VmHWM:");

    /// <summary>Resident set now, in MiB.</summary>
    public static double CurrentMib() => Status("VmRSS:");

    private static double Status(string field)
    {
        if (OperatingSystem.IsLinux() && File.Exists("/proc/self/status"))
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(field, StringComparison.Ordinal)
                    && long.TryParse(line[field.Length..].Trim().Split(' ')[0], out var kib))   // "VmHWM:\t  123456 kB"
                    return kib / 1024.0;
        return Environment.WorkingSet / (1024.0 * 1024.0);
    }
}
