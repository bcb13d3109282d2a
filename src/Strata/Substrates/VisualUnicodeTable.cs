// The frozen visual Unicode embedding (Emergent Semantics, arXiv 2507.04886; the author's bvv241 builder notebooks): every vocabulary entry, in id
// order, is drawn from
// GNU Unifont into a G x (G * characters) canvas, perturbed by the builder's deterministic augmentation, brought to
// G x G, read in "polar snake" order into G*G bits, and the [V, G*G] bit matrix is turned by a full-rank PCA into an
// orthogonal coordinate system with L2-normalised rows.
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Substrates;

/// <summary>The builder settings of one published variant. The augmentation's random draws are the same for every
/// token (the builder reseeds Python's and NumPy's generators with 42 per image), so they are derived once here.</summary>
public sealed record VisualVariant(string Name, int Size, double MaxRotation, int MaxShift, double EasyNoise, double ComplexNoise)
{
    public static VisualVariant TwoThree { get; } = new("2-3", 32, 4, 2, 0.01, 0.001);
    public static VisualVariant Max { get; } = new("max", 32, 7, 3, 0.03, 0.001);
    /// <summary>64 px cells, 4,096 bits (bvv241-abs).</summary>
    public static VisualVariant Abs { get; } = new("abs", 64, 7, 3, 0.03, 0.001);

    public static IReadOnlyList<VisualVariant> All { get; } = [TwoThree, Max, Abs];

    public static VisualVariant Get(string name) => All.FirstOrDefault(v => v.Name == name)
        ?? throw new StrataException($"substrate.variant: unknown visual variant '{name}' (known: {string.Join(", ", All.Select(v => v.Name))})");

    public int Bits => Size * Size;

    /// <summary>random.seed(42); angle = uniform(-r, r); dx = randint(-s, s); dy = randint(-s, s).</summary>
    public (double Angle, int Dx, int Dy) EasyDraws()
    {
        var r = Mt19937.SeedPython(42);
        double angle = r.Uniform(-MaxRotation, MaxRotation);
        int dx = r.RandInt(-MaxShift, MaxShift);
        int dy = r.RandInt(-MaxShift, MaxShift);
        return (angle, dx, dy);
    }
}

internal static class VisualUnicodeTable
{
    /// <summary>Latin (U+0000-024F), Greek (U+0370-03FF), Cyrillic (U+0400-052F) and Armenian (U+0530-058F): tokens made
    /// only of these get the "easy script" augmentation (rotation, shift, more noise).</summary>
    public static bool IsEasyScript(string text)
    {
        foreach (var c in text)
            if (!(c <= '\u024F' || c is >= '\u0370' and <= '\u03FF' || c is >= '\u0400' and <= '\u052F' || c is >= '\u0530' and <= '\u058F'))
                return false;
        return true;
    }

    /// <summary>The [V, G*G] bit matrix (1 = ink) of <paramref name="tokens"/>, rows in id order, bits in polar-snake order.</summary>
    public static byte[] Bits(IReadOnlyList<string> tokens, VisualVariant v, UnicodeGlyphs glyphs)
    {
        int g = v.Size, n = v.Bits;
        var order = PolarSnakeOrder(g);
        var augmentation = new VisualAugmentation(v);
        var cells = new GlyphInk?[65536];
        var bits = new byte[(long)tokens.Count * n];
        Parallel.For(0, tokens.Count, t =>
        {
            var text = tokens[t];
            foreach (var c in text) cells[c] ??= glyphs.Render(c);
            var img = augmentation.ToCell(augmentation.Apply(Canvas(text, g, c => cells[c]!), text), text);
            var row = bits.AsSpan((int)((long)t * n), n);
            for (int k = 0; k < n; k++) row[k] = img[order[k]] < 128 ? (byte)1 : (byte)0;
        });
        return bits;
    }

    /// <summary>A white canvas G high and G per character wide, each character drawn in its cell as the builder places
    /// it: x = i*G + (G - w) // 2, y = (G - h) // 2 - top, with (w, h, top) from Pillow's bounding box.</summary>
    public static byte[] Canvas(string text, int g, Func<char, GlyphInk> glyph)
    {
        int w = g * Math.Max(1, text.Length);
        var img = new byte[w * g];
        Array.Fill(img, (byte)255);
        for (int i = 0; i < text.Length; i++)
        {
            var ink = glyph(text[i]);
            int x = i * g + FloorDiv(g - ink.Width, 2), y = FloorDiv(g - ink.Height, 2) - ink.Top;
            foreach (var (px, py) in ink.Pixels)
            {
                int cx = x + px, cy = y + py;
                if (cx >= 0 && cx < w && cy >= 0 && cy < g) img[cy * w + cx] = 0;
            }
        }
        return img;
    }

    private static int FloorDiv(int a, int b) => (int)Math.Floor((double)a / b);

    /// <summary>Pillow's <c>rotate(angle, NEAREST, expand=0, fillcolor=255)</c>: counter-clockwise about (W/2, H/2),
    /// the inverse affine map rounded to 15 decimals and sampled in 16.16 fixed point (<c>affine_fixed</c>).</summary>
    public static byte[] Rotate(byte[] img, int w, int h, double degrees)
    {
        degrees %= 360.0;
        if (degrees == 0) return (byte[])img.Clone();
        double a = -degrees * Math.PI / 180.0;
        double m0 = Round15(Math.Cos(a)), m1 = Round15(Math.Sin(a)), m3 = Round15(-Math.Sin(a)), m4 = Round15(Math.Cos(a));
        double cx = w / 2.0, cy = h / 2.0;
        double m2 = m0 * -cx + m1 * -cy + cx, m5 = m3 * -cx + m4 * -cy + cy;
        int a0 = Fix(m0), a1 = Fix(m1), a3 = Fix(m3), a4 = Fix(m4);
        int a2 = Fix(m2 + m1 * 0.5 + m0 * 0.5), a5 = Fix(m5 + m4 * 0.5 + m3 * 0.5);
        var output = new byte[img.Length];
        Array.Fill(output, (byte)255);
        for (int y = 0; y < h; y++)
        {
            int xx = a2, yy = a5;
            for (int x = 0; x < w; x++)
            {
                int xin = xx >> 16, yin = yy >> 16;
                if (xin >= 0 && xin < w && yin >= 0 && yin < h) output[y * w + x] = img[yin * w + xin];
                xx += a0;
                yy += a3;
            }
            a2 += a1;
            a5 += a4;
        }
        return output;
    }

    private static double Round15(double v) => double.Parse(v.ToString("F15", System.Globalization.CultureInfo.InvariantCulture),
        System.Globalization.CultureInfo.InvariantCulture);

    private static int Fix(double v) => (int)Math.Floor(v * 65536.0 + 0.5);

    /// <summary>Pasted onto a white canvas of the same size at (dx, dy); what leaves the canvas is lost.</summary>
    public static byte[] Shift(byte[] img, int w, int h, int dx, int dy)
    {
        var output = new byte[img.Length];
        Array.Fill(output, (byte)255);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int sx = x - dx, sy = y - dy;
                if (sx >= 0 && sx < w && sy >= 0 && sy < h) output[y * w + x] = img[sy * w + sx];
            }
        return output;
    }

    /// <summary><c>np.random.seed(42); np.random.rand(H, W) &lt; level</c>, row-major.</summary>
    public static bool[] SaltMask(int w, int h, double level)
    {
        var r = Mt19937.Seed(42);
        var mask = new bool[w * h];
        for (int i = 0; i < mask.Length; i++) mask[i] = r.NextDouble() < level;
        return mask;
    }

    /// <summary>Pillow's resize of a mode "1" image (forced to NEAREST): output column x reads column
    /// floor((x + 0.5) * W / G); rows are kept.</summary>
    public static byte[] ResizeColumns(byte[] img, int w, int h, int g)
    {
        var output = new byte[g * h];
        double scale = (double)w / g, xo = scale * 0.5;
        var columns = new int[g];
        for (int x = 0; x < g; x++, xo += scale) columns[x] = (int)xo;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < g; x++) output[y * g + x] = img[y * w + columns[x]];
        return output;
    }

    /// <summary>Pixel indices (y * G + x) sorted by (r, θ, x, y) about the centre (G/2, G/2): the "polar snake" read order.</summary>
    public static int[] PolarSnakeOrder(int g)
    {
        var keys = new List<(double R, double Theta, int X, int Y)>(g * g);
        for (int x = 0; x < g; x++)
            for (int y = 0; y < g; y++)
            {
                double dx = x - g / 2.0, dy = y - g / 2.0;
                keys.Add((Math.Sqrt(dx * dx + dy * dy), Math.Atan2(dy, dx), x, y));
            }
        keys.Sort();
        return keys.Select(k => k.Y * g + k.X).ToArray();
    }

    /// <summary>The substrate table [V, G*G]: the bits of every token, then full PCA and L2 normalisation (float32).</summary>
    public static Tensor Build(IReadOnlyList<string> tokens, VisualVariant v, UnicodeGlyphs glyphs)
    {
        var bits = Bits(tokens, v, glyphs);
        using var x = torch.tensor(bits, [tokens.Count, v.Bits]);
        return SubstrateTables.PcaNormalized(x);
    }
}

/// <summary>The builder's <c>augment_image</c> and resize for one variant: easy-script canvases are rotated and shifted
/// by the variant's fixed draws, every canvas gets NumPy's salt mask for its shape and level, and multi-character
/// canvases are brought to G x G.</summary>
internal sealed class VisualAugmentation(VisualVariant v)
{
    private readonly (double Angle, int Dx, int Dy) _draws = v.EasyDraws();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(int, double), bool[]> _masks = new();

    /// <summary>Rotation and shift (easy scripts), then salt noise, on the canvas of <paramref name="text"/>.</summary>
    public byte[] Apply(byte[] canvas, string text)
    {
        int g = v.Size, w = g * Math.Max(1, text.Length);
        bool easy = VisualUnicodeTable.IsEasyScript(text);
        var img = easy
            ? VisualUnicodeTable.Shift(VisualUnicodeTable.Rotate(canvas, w, g, _draws.Angle), w, g, _draws.Dx, _draws.Dy)
            : (byte[])canvas.Clone();
        var mask = _masks.GetOrAdd((w, easy ? v.EasyNoise : v.ComplexNoise), k => VisualUnicodeTable.SaltMask(k.Item1, g, k.Item2));
        for (int i = 0; i < img.Length; i++) if (mask[i]) img[i] = 0;
        return img;
    }

    /// <summary>The augmented canvas of <paramref name="text"/> as the final G x G cell.</summary>
    public byte[] ToCell(byte[] augmented, string text)
    {
        int g = v.Size, w = g * Math.Max(1, text.Length);
        return w == g ? augmented : VisualUnicodeTable.ResizeColumns(augmented, w, g, g);
    }
}
