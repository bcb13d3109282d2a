// GNU Unifont glyphs as the paper's builder drew them (the author's bvv241 builder notebooks, step 1): Pillow with its
// HarfBuzz (raqm) layout over FreeType. Each character is shaped by HarfBuzz as a whole text (beginning and end of
// text set, so a lone combining mark gets HarfBuzz's dotted circle, default-ignorable characters vanish and Arabic
// letters take their isolated forms) and the glyphs are rasterised by Skia (FreeType underneath) at integer pixel
// origins. The bounding box follows Pillow's getbbox with the default "la" anchor: x from the pen origin, y from the
// ascender line, the pen origin and the baseline always included. "\n" draws nothing (Pillow treats it as a line
// break). Unifont's outlines are whole pixels, so the ink is exact 0/255.
using System.Security.Cryptography;
using HarfBuzzSharp;
using SkiaSharp;
using Strata.Util;

namespace Strata.Substrates;

/// <summary>One character's ink, as offsets from the pen origin (x) and the ascender line (y, downwards), and the
/// Pillow bounding box (left, top, right, bottom) in the same frame.</summary>
internal sealed record GlyphInk(IReadOnlyList<(short X, short Y)> Pixels, int Left, int Top, int Right, int Bottom)
{
    public int Width => Right - Left;
    public int Height => Bottom - Top;
}

internal sealed class UnicodeGlyphs : IDisposable
{
    public const string DebianFont = "/usr/share/fonts/opentype/unifont/unifont.otf";
    public const string FontPackage = "fonts-unifont";

    private readonly ThreadLocal<Renderer> _renderers;
    private readonly byte[] _fontBytes;

    public string FontPath { get; }
    /// <summary>sha256 of the font file, recorded in every substrate built from it.</summary>
    public string FontHash { get; }
    public int PixelSize { get; }
    /// <summary>The ascender in whole pixels (28 at 32 px): where Pillow's "la" anchor puts the top of the text.</summary>
    public int Ascender { get; }

    public UnicodeGlyphs(string fontPath, int pixelSize)
    {
        if (!File.Exists(fontPath))
            throw new StrataException(
                $"{fontPath}: the GNU Unifont font is missing; it comes from the Debian package {FontPackage} (apt-get install {FontPackage}; " +
                "in a Strata checkout scripts/bootstrap.sh installs it)");
        FontPath = fontPath;
        PixelSize = pixelSize;
        _fontBytes = File.ReadAllBytes(fontPath);
        FontHash = Convert.ToHexStringLower(SHA256.HashData(_fontBytes));
        _renderers = new ThreadLocal<Renderer>(() => new Renderer(fontPath, _fontBytes, pixelSize), trackAllValues: true);
        Ascender = _renderers.Value!.Ascender;
    }

    /// <summary>The ink and Pillow bounding box of one character.</summary>
    public GlyphInk Render(char c) => _renderers.Value!.Render(c);

    public void Dispose()
    {
        foreach (var r in _renderers.Values) r.Dispose();
        _renderers.Dispose();
    }

    private static int Pixel(int v26_6) => ((v26_6 + 32) & -64) >> 6;            // Pillow's PIXEL(): round 26.6 to pixels

    private sealed class Renderer : IDisposable
    {
        private const int Scratch = 192, OriginX = 64, AscenderRow = 64;
        private readonly Blob _blob;
        private readonly Face _face;
        private readonly HarfBuzzSharp.Font _hb;
        private readonly SKTypeface _typeface;
        private readonly SKFont _font;
        private readonly SKBitmap _bitmap;
        private readonly SKCanvas _canvas;
        private readonly SKPaint _paint;
        public int Ascender { get; }

        public Renderer(string fontPath, byte[] fontBytes, int size)
        {
            _blob = Blob.FromFile(fontPath);                                           // native memory (a stream's bytes may move)
            _face = new Face(_blob, 0);
            _hb = new HarfBuzzSharp.Font(_face);
            _hb.SetScale(size * 64, size * 64);
            _typeface = SKTypeface.FromData(SKData.CreateCopy(fontBytes)) ?? throw new StrataException("Skia could not read the font");
            _font = new SKFont(_typeface, size) { Edging = SKFontEdging.Antialias, Hinting = SKFontHinting.None, Subpixel = false };
            Ascender = (int)Math.Round(-_font.Metrics.Ascent);
            _bitmap = new SKBitmap(new SKImageInfo(Scratch, Scratch, SKColorType.Gray8, SKAlphaType.Opaque));
            _canvas = new SKCanvas(_bitmap);
            _paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        }

        public GlyphInk Render(char c)
        {
            using var buffer = new HarfBuzzSharp.Buffer();
            buffer.AddUtf16(c.ToString());
            buffer.GuessSegmentProperties();
            buffer.Flags = BufferFlags.BeginningOfText | BufferFlags.EndOfText;
            _hb.Shape(buffer);
            var infos = buffer.GlyphInfos;
            var positions = buffer.GlyphPositions;

            // Pillow's bounding_box_and_anchors: pixels, y up, origin and baseline included
            int position = 0, xMin = 0, xMax = 0, yMin = 0, yMax = 0;
            var origins = new (int X, int Y)[infos.Length];
            for (int i = 0; i < infos.Length; i++)
            {
                int px = Pixel(position + positions[i].XOffset), py = Pixel(positions[i].YOffset);
                origins[i] = (px, py);
                position += positions[i].XAdvance;
                xMax = Math.Max(xMax, Pixel(position));
                using var path = _font.GetGlyphPath((ushort)infos[i].Codepoint);
                var b = path?.Bounds ?? SKRect.Empty;
                if (b.IsEmpty) continue;
                // FT_GLYPH_BBOX_PIXELS: grid-fitted control box (Skia's path is y-down)
                int gx0 = (int)Math.Floor(b.Left) + px, gx1 = (int)Math.Ceiling(b.Right) + px;
                int gy0 = (int)Math.Floor(-b.Bottom) + py, gy1 = (int)Math.Ceiling(-b.Top) + py;
                xMin = Math.Min(xMin, gx0); xMax = Math.Max(xMax, gx1);
                yMin = Math.Min(yMin, gy0); yMax = Math.Max(yMax, gy1);
            }
            var ink = new List<(short, short)>();
            if (c != '\n')
            {
                _canvas.Clear(SKColors.White);
                using (var builder = new SKTextBlobBuilder())
                {
                    var run = builder.AllocatePositionedRun(_font, infos.Length);
                    var glyphs = run.Glyphs;
                    var points = run.Positions;
                    for (int i = 0; i < infos.Length; i++)
                    {
                        glyphs[i] = (ushort)infos[i].Codepoint;
                        points[i] = new SKPoint(OriginX + origins[i].X, AscenderRow + Ascender - origins[i].Y);
                    }
                    using var blob = builder.Build();
                    if (blob is not null) _canvas.DrawText(blob, 0, 0, _paint);
                }
                var pixels = _bitmap.GetPixelSpan();
                for (int y = 0; y < Scratch; y++)
                    for (int x = 0; x < Scratch; x++)
                        if (pixels[y * Scratch + x] < 128) ink.Add(((short)(x - OriginX), (short)(y - AscenderRow)));
            }
            return new GlyphInk(ink, xMin, Ascender - yMax, xMax, Ascender - yMin);
        }

        public void Dispose()
        {
            _paint.Dispose(); _canvas.Dispose(); _bitmap.Dispose(); _font.Dispose(); _typeface.Dispose();
            _hb.Dispose(); _face.Dispose(); _blob.Dispose();
        }
    }
}

/// <summary>GNU Unifont's <c>.hex</c> bitmaps (<c>XXXX:HEX</c>; 32 hex digits = 8x16, 64 = 16x16, most significant bit
/// leftmost): the reference the font builds are drawn from.</summary>
internal static class UnifontHex
{
    public const string DebianPath = "/usr/share/unifont/unifont.hex";

    /// <summary>Rows of booleans (true = ink) for every code point in the file.</summary>
    public static Dictionary<int, bool[,]> Read(string path = DebianPath)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: missing; it comes from the Debian package unifont");
        var glyphs = new Dictionary<int, bool[,]>();
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            int colon = text.IndexOf(':');
            if (colon < 0) throw new StrataException($"{path}:{line}: expected XXXX:HEX");
            int cp = Convert.ToInt32(text[..colon], 16);
            var hex = text[(colon + 1)..];
            int width = hex.Length switch { 32 => 8, 64 => 16, _ => throw new StrataException($"{path}:{line}: {hex.Length} hex digits (expected 32 or 64)") };
            var g = new bool[16, width];
            for (int r = 0; r < 16; r++)
            {
                int digits = width / 4;
                uint row = Convert.ToUInt32(hex.Substring(r * digits, digits), 16);
                for (int x = 0; x < width; x++) g[r, x] = ((row >> (width - 1 - x)) & 1) != 0;
            }
            glyphs[cp] = g;
        }
        return glyphs;
    }
}
