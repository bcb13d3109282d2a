using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Strata.Tests;

/// <summary>The builder's random draws, the glyphs and the pixel operations, checked against the values the paper's
/// builder produces (the values CPython, NumPy and Pillow give for the author's bvv241 builder notebooks) and against Unifont's
/// own .hex bitmaps.</summary>
public class VisualPipelineTests
{
    private static readonly Lazy<UnicodeGlyphs> Glyphs32 = new(() => new UnicodeGlyphs(UnicodeGlyphs.DebianFont, 32));
    private static readonly Lazy<Dictionary<int, bool[,]>> Hex = new(() => UnifontHex.Read());

    [Fact]
    public void Random_draws_are_cpythons_and_numpys()
    {
        Assert.Equal(0.3745401188473625, Mt19937.Seed(42).NextDouble());
        Assert.Equal(0.6394267984578837, Mt19937.SeedPython(42).NextDouble());
        var (a, dx, dy) = VisualVariant.TwoThree.EasyDraws();
        Assert.Equal(1.115414387663070, a, 12);
        Assert.Equal((-2, 0), (dx, dy));
        (a, dx, dy) = VisualVariant.Max.EasyDraws();
        Assert.Equal(1.951975178410372, a, 12);
        Assert.Equal((-3, 2), (dx, dy));
        // salt noise: black dots per canvas shape and level, as NumPy draws them
        int Dots(int w, int h, double level) => VisualUnicodeTable.SaltMask(w, h, level).Count(m => m);
        Assert.Equal([32, 5, 0, 60, 95, 122], new[] { Dots(32, 32, 0.03), Dots(32, 32, 0.01), Dots(32, 32, 0.001), Dots(64, 32, 0.03), Dots(96, 32,
            0.03), Dots(64, 64, 0.03) });
    }

    [Fact]
    public void Polar_snake_order_starts_at_the_centre_and_ends_in_the_corner()
    {
        var order = VisualUnicodeTable.PolarSnakeOrder(32);
        (int, int)[] first = [(16, 16), (16, 15), (17, 16), (16, 17), (15, 16), (15, 15), (17, 15), (17, 17), (15, 17), (16, 14), (18, 16), (16, 18)];
        Assert.Equal(first, order.Take(12).Select(i => (i % 32, i / 32)));
        Assert.Equal(0, order[^1]);
        Assert.Equal(1024, order.Distinct().Count());
        Assert.Equal(135, Enumerable.Range(0, 1024).Select(i => Math.Sqrt(Math.Pow(i % 32 - 16.0, 2) + Math.Pow(i / 32 - 16.0, 2))).Distinct().Count());
    }

    [Fact]
    public void Pillow_rotation_shift_and_resize_move_pixels_as_pillow_does()
    {
        var rng = new Random(3);
        var img = Enumerable.Range(0, 32 * 32).Select(_ => rng.Next(2) == 0 ? (byte)0 : (byte)255).ToArray();
        Assert.Equal(img, VisualUnicodeTable.Rotate(img, 32, 32, 0));
        Assert.Equal(img, VisualUnicodeTable.Rotate(img, 32, 32, 360));
        var quarter = VisualUnicodeTable.Rotate(img, 32, 32, 90);                  // counter-clockwise
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) Assert.Equal(img[x * 32 + 31 - y], quarter[y * 32 + x]);
        // the easy-script angle (1.115°) moves no pixel centre of a 32 x 32 cell by half a pixel, so nearest sampling
        // leaves a single character as it is; a three-character canvas changes towards its ends
        double angle = VisualVariant.TwoThree.EasyDraws().Angle;
        Assert.Equal(img, VisualUnicodeTable.Rotate(img, 32, 32, angle));
        var wideImg = Enumerable.Range(0, 96 * 32).Select(_ => rng.Next(2) == 0 ? (byte)0 : (byte)255).ToArray();
        var turned = VisualUnicodeTable.Rotate(wideImg, 96, 32, angle);
        Assert.Equal(wideImg[16 * 96 + 48], turned[16 * 96 + 48]);                    // the centre stays
        Assert.Equal(wideImg.Skip(16 * 96 + 40).Take(16), turned.Skip(16 * 96 + 40).Take(16));
        Assert.NotEqual(wideImg.Take(96 * 4), turned.Take(96 * 4));
        var shifted = VisualUnicodeTable.Shift(img, 32, 32, -2, 1);
        Assert.Equal(img[0 * 32 + 5], shifted[1 * 32 + 3]);
        Assert.Equal(255, shifted[0 * 32 + 7]);                                          // the row shifted in is white
        Assert.Equal(255, shifted[5 * 32 + 31]);
        var wide = Enumerable.Range(0, 96 * 32).Select(i => (byte)(i % 96)).ToArray();     // a 3-character canvas
        var resized = VisualUnicodeTable.ResizeColumns(wide, 96, 32, 32);
        Assert.Equal(Enumerable.Range(0, 32).Select(x => (byte)(3 * x + 1)), resized.Take(32));
    }

    private static bool[,] DoubledHex(int cp)
    {
        var g = Hex.Value[cp];
        int w = g.GetLength(1);
        var d = new bool[32, 2 * w];
        for (int y = 0; y < 32; y++) for (int x = 0; x < 2 * w; x++) d[y, x] = g[y / 2, x / 2];
        return d;
    }

    [Theory]
    [InlineData('A', 8, -2)]
    [InlineData('中', 0, 0)]
    public void Known_glyphs_are_the_doubled_hex_bitmaps_placed_as_the_builder_places_them(char c, int x0, int y0)
    {
        var ink = Glyphs32.Value.Render(c);
        if (c == 'A') Assert.Equal((0, 8, 16, 28), (ink.Left, ink.Top, ink.Right, ink.Bottom));
        var cell = VisualUnicodeTable.Canvas(c.ToString(), 32, Glyphs32.Value.Render);
        var hex = DoubledHex(c);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
            {
                int hy = y - y0, hx = x - x0;
                bool expected = hy >= 0 && hy < 32 && hx >= 0 && hx < hex.GetLength(1) && hex[hy, hx];
                Assert.True(expected == (cell[y * 32 + x] == 0), $"U+{(int)c:X4} pixel ({x}, {y})");
            }
    }

    [Fact]
    public void A_lone_combining_mark_is_drawn_over_a_dotted_circle()
    {
        var mark = Glyphs32.Value.Render('\u05B6').Pixels.ToHashSet();
        var circle = Glyphs32.Value.Render('\u25CC').Pixels;
        Assert.All(circle, p => Assert.Contains(p, mark));
        Assert.True(mark.Count > circle.Count);
    }

    /// <summary>The shaped font against Unifont's .hex over the whole BMP: every combining mark of Unifont's list differs
    /// (dotted circle), and the other differences are HarfBuzz's: default-ignorable characters drawn as nothing, Arabic
    /// letters in their isolated forms, Thai/Lao SARA AM decomposed, two Mongolian marks, and "\n" (Pillow's line
    /// break). The count is that of HarfBuzz 8.3.1 (the package pinned here); FreeType's rendering of the same font through
    /// another HarfBuzz gives 1,343, hiding fewer default-ignorable code points.</summary>
    [Fact]
    public void The_shaped_font_differs_from_the_hex_bitmaps_exactly_where_harfbuzz_changes_the_text()
    {
        var differing = new List<int>();
        foreach (var (cp, g) in Hex.Value)
        {
            if (cp > 0xFFFF) continue;
            var ink = Glyphs32.Value.Render((char)cp).Pixels.ToHashSet();
            var hex = DoubledHex(cp);
            int expected = 0;
            bool same = true;
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < hex.GetLength(1); x++)
                    if (hex[y, x]) { expected++; same &= ink.Contains(((short)x, (short)y)); }
            if (!same || ink.Count != expected) differing.Add(cp);
        }
        var combining = File.ReadLines("/usr/share/unifont/plane00-combining.txt").Select(l => Convert.ToInt32(l.Split(':')[0], 16)).ToHashSet();
        Assert.Subset(differing.ToHashSet(), combining);
        bool DefaultIgnorable(int c) => c is 0x00AD or 0x034F or 0x061C or >= 0x17B4 and <= 0x17B5 or >= 0x180B and <= 0x180F or >= 0x200B and <= 0x200F
            or >= 0x202A and <= 0x202E or >= 0x2060 and <= 0x206F or >= 0xFE00 and <= 0xFE0F or 0xFEFF or >= 0xFFF0 and <= 0xFFF8;
        var others = differing.Where(c => !combining.Contains(c)).ToList();
        Assert.All(others, c => Assert.True(DefaultIgnorable(c)
            || c is 0x000A or >= 0x0600 and <= 0x06FF or 0x0CF3 or 0x0E33 or 0x0EB3 or 0x1885 or 0x1886, $"U+{c:X4}"));
        Assert.Equal(1312 + 75, differing.Count);
    }
}
