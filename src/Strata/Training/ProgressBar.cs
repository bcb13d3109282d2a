namespace Strata.Training;

/// <summary>A one-line progress bar on a terminal (redrawn in place); on a pipe or file, a plain line every
/// <c>everyLines</c> steps so logs stay readable.</summary>
internal sealed class ProgressBar(TextWriter output, long total, int everyLines, bool interactive)
{
    public void Report(long done, string status)
    {
        if (interactive)
        {
            const int width = 30;
            int filled = total == 0 ? width : (int)(width * Math.Min(done, total) / total);
            output.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {done}/{total} {status}   ");
            if (done >= total) output.WriteLine();
        }
        else if (done % everyLines == 0 || done >= total)
        {
            output.WriteLine($"step {done}/{total} {status}");
        }
    }

    /// <summary>Prints a message on its own line without breaking the bar.</summary>
    public void Message(string text)
    {
        if (interactive) output.Write("\r" + new string(' ', 110) + "\r");
        output.WriteLine(text);
    }
}
