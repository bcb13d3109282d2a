// Looking at a token interface instead of reading it: the rendered glyphs of chosen tokens at each step of the
// builder (canvas, after the augmentation, the final G x G image), and the table projected onto its first two
// principal axes, coloured by the Unicode script of each token.
using SkiaSharp;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Substrates;

internal static class SubstrateViews
{
    /// <summary>One row per token: its canvas as drawn, after rotation/shift/noise, and brought to G x G; 4x magnified.</summary>
    public static void SaveGlyphGrid(string pngPath, IReadOnlyList<string> tokens, VisualVariant v, UnicodeGlyphs glyphs)
    {
        const int zoom = 4, pad = 8, label = 150;
        int g = v.Size;
        int maxW = tokens.Max(t => Math.Max(1, t.Length)) * g;
        int width = label + (maxW * 2 + g) * zoom + 4 * pad, height = tokens.Count * (g * zoom + pad) + pad;
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(new SKColor(235, 235, 235));
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var typeface = SKTypeface.FromFile(glyphs.FontPath);
        using var font = new SKFont(typeface, 16);
        var augmentation = new VisualAugmentation(v);
        for (int r = 0; r < tokens.Count; r++)
        {
            var t = tokens[r];
            int w = g * Math.Max(1, t.Length), top = pad + r * (g * zoom + pad);
            var drawn = VisualUnicodeTable.Canvas(t, g, glyphs.Render);
            var augmented = augmentation.Apply(drawn, t);
            var final = augmentation.ToCell(augmented, t);
            var name = string.Concat(t.Select(c => char.IsControl(c) ? $"U+{(int)c:X4}" : c.ToString()));
            canvas.DrawText($"{name} ({(VisualUnicodeTable.IsEasyScript(t) ? "easy" : "complex")})", pad, top + 20, font, text);
            Blit(canvas, drawn, w, g, label, top, zoom);
            Blit(canvas, augmented, w, g, label + w * zoom + pad, top, zoom);
            Blit(canvas, final, g, g, label + 2 * maxW * zoom + 2 * pad, top, zoom);
        }
        Save(bitmap, pngPath);
    }

    private static void Blit(SKCanvas canvas, byte[] img, int w, int h, int left, int top, int zoom)
    {
        using var white = new SKPaint { Color = SKColors.White };
        using var black = new SKPaint { Color = SKColors.Black };
        canvas.DrawRect(left, top, w * zoom, h * zoom, white);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (img[y * w + x] < 128) canvas.DrawRect(left + x * zoom, top + y * zoom, zoom, zoom, black);
    }

    private static void Save(SKBitmap bitmap, string path)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>The script a token is coloured by: that of its first letter-like character.</summary>
    public static string Script(string token)
    {
        foreach (var c in token)
        {
            if (c < 0x80) return char.IsLetter(c) ? "Latin" : "ASCII other";
            return c switch
            {
                <= '\u024F' => "Latin", >= '\u0370' and <= '\u03FF' => "Greek", >= '\u0400' and <= '\u052F' => "Cyrillic",
                >= '\u0530' and <= '\u058F' => "Armenian", >= '\u0590' and <= '\u05FF' => "Hebrew", >= '\u0600' and <= '\u06FF' => "Arabic",
                >= '\u0900' and <= '\u0DFF' => "Indic", >= '\u0E00' and <= '\u0EFF' => "Thai/Lao",
                    >= '\u1100' and <= '\u11FF' or >= '\uAC00' and <= '\uD7AF' => "Hangul",
                >= '\u3040' and <= '\u30FF' => "Kana", >= '\u3400' and <= '\u9FFF' or >= '\uF900' and <= '\uFAFF' => "CJK ideographs",
                >= '\u2000' and <= '\u2BFF' => "symbols", >= '\uE000' and <= '\uF8FF' => "private use",
                _ => "other",
            };
        }
        return "other";
    }

    /// <summary>Up to <paramref name="sample"/> rows (evenly spaced ids) projected onto the table's first two principal
    /// axes, one colour per script.</summary>
    public static void SaveProjection(string pngPath, Tensor table, IReadOnlyList<string> tokens, string title, int sample = 20000)
    {
        long n = table.shape[0];
        int step = (int)Math.Max(1, n / sample);
        var ids = Enumerable.Range(0, (int)n).Where(i => i % step == 0).ToArray();
        using var rows = table.index_select(0, torch.tensor(ids.Select(i => (long)i).ToArray())).to(ScalarType.Float64);
        using var centred = rows - rows.mean([0L], keepdim: true);
        var (_, _, vh) = torch.linalg.svd(centred, fullMatrices: false);
        using var _v = vh;
        using var xy = centred.matmul(vh[..2].t());                                    // [n, 2]
        var points = xy.data<double>().ToArray();
        var plot = new ScottPlot.Plot();
        foreach (var group in ids.Select((id, k) => (id, k)).GroupBy(p => Script(p.id < tokens.Count ? tokens[p.id] : "")).OrderByDescending(g => g.Count()))
        {
            var s = plot.Add.ScatterPoints(group.Select(p => points[2 * p.k]).ToArray(), group.Select(p => points[2 * p.k + 1]).ToArray());
            s.LegendText = $"{group.Key} ({group.Count()})";
            s.MarkerSize = 3;
        }
        plot.Title(title);
        plot.XLabel("principal axis 1");
        plot.YLabel("principal axis 2");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        AtomicFile.WriteAllBytes(pngPath, plot.GetImageBytes(1000, 750, ScottPlot.ImageFormat.Png));
    }
}
