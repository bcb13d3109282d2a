// gzip read as gzip -t and zcat read it (RFC 1952): one member after another (bgzip blocks and concatenated rotated
// logs are files of many members), each member's CRC-32 and length checked, and a file that ends inside a member
// refused with the byte offset where it stops. .NET's GZipStream reads concatenated members but ends quietly where a
// file was cut, and its end cannot be told from a member's; zlib's inflate (libz, part of every Linux system) decodes
// exactly one member per reset and says where it ended, so each member is checked whole.
using System.Runtime.InteropServices;
using Strata.Util;

namespace Strata.Formats;

internal sealed unsafe class GzipMembers : Stream
{
    [StructLayout(LayoutKind.Sequential)]
    private struct ZStream
    {
        public byte* NextIn;
        public uint AvailIn;
        public nuint TotalIn;
        public byte* NextOut;
        public uint AvailOut;
        public nuint TotalOut;
        public sbyte* Msg;
        public IntPtr State, ZAlloc, ZFree, Opaque;
        public int DataType;
        public nuint Adler, Reserved;
    }

    private const string Zlib = "libz.so.1";
    [DllImport(Zlib)] private static extern int inflateInit2_(ZStream* strm, int windowBits, byte* version, int streamSize);
    [DllImport(Zlib)] private static extern int inflate(ZStream* strm, int flush);
    [DllImport(Zlib)] private static extern int inflateReset(ZStream* strm);
    [DllImport(Zlib)] private static extern int inflateEnd(ZStream* strm);
    [DllImport(Zlib)] private static extern byte* zlibVersion();

    private const int StreamEnd = 1, BufError = -5, GzipOnly = 15 + 16;

    private readonly Stream _file;
    private readonly string _path;
    private readonly byte[] _input = new byte[1 << 16];
    private readonly GCHandle _pinned;
    private readonly ZStream* _z;
    private long _consumed;                                                             // compressed bytes behind the current member
    private bool _inMember, _done;
    private int _members;

    public GzipMembers(Stream file, string path)
    {
        (_file, _path) = (file, path);
        _pinned = GCHandle.Alloc(_input, GCHandleType.Pinned);
        _z = (ZStream*)NativeMemory.AllocZeroed((nuint)sizeof(ZStream));
        int rc = inflateInit2_(_z, GzipOnly, zlibVersion(), sizeof(ZStream));
        if (rc != 0)
        {
            NativeMemory.Free(_z);
            _pinned.Free();
            throw new InvalidOperationException($"zlib inflateInit2 failed ({rc})");
        }
    }

    private long Offset => _consumed + (long)_z->TotalIn;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty) return 0;
        while (!_done)
        {
            if (_z->AvailIn == 0 && !Refill())
            {
                if (_inMember || _members == 0)
                    throw new StrataException($"{_path}: the gzip file ends at byte {Offset:N0}, inside a member (it is truncated)");
                _done = true;
                break;
            }
            if (!_inMember)
            {
                if (_input[(int)(_z->NextIn - (byte*)_pinned.AddrOfPinnedObject())] == 0 && OnlyZerosLeft()) { _done = true; break; }   // padding
                _consumed += (long)_z->TotalIn;
                inflateReset(_z);
                _inMember = true;
            }
            int produced, rc;
            fixed (byte* dest = buffer)
            {
                _z->NextOut = dest;
                _z->AvailOut = (uint)buffer.Length;
                rc = inflate(_z, 0);
                produced = buffer.Length - (int)_z->AvailOut;
            }
            if (rc == StreamEnd) { _inMember = false; _members++; }
            else if (rc < 0 && rc != BufError)
                throw new StrataException($"{_path}: damaged gzip data near byte {Offset:N0} ({(_z->Msg is null ? $"zlib error {rc}" : new string(_z->Msg))})");
            if (produced > 0) return produced;
        }
        return 0;
    }

    private bool Refill()
    {
        int n = _file.Read(_input, 0, _input.Length);
        _z->NextIn = (byte*)_pinned.AddrOfPinnedObject();
        _z->AvailIn = (uint)n;
        return n > 0;
    }

    /// <summary>Whether the rest of the file is zero bytes (padding some writers leave after the last member).</summary>
    private bool OnlyZerosLeft()
    {
        while (true)
        {
            var left = new ReadOnlySpan<byte>(_z->NextIn, (int)_z->AvailIn);
            if (left.ContainsAnyExcept((byte)0)) return false;
            if (!Refill()) return true;
        }
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (_pinned.IsAllocated)
        {
            inflateEnd(_z);
            NativeMemory.Free(_z);
            _pinned.Free();
        }
        if (disposing) _file.Dispose();
        base.Dispose(disposing);
    }
}
