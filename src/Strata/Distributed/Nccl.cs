using System.Runtime.InteropServices;
using Strata.Util;

namespace Strata.Distributed;

/// <summary>
/// NCCL's all-reduce on CUDA tensors, bound at run time to libnccl.so.2 (the machine's CUDA install or PyTorch's
/// nvidia-nccl wheel; STRATA_NCCL names another file). One communicator per process: rank 0 makes the 128-byte
/// ncclUniqueId and every rank receives it over MPI, as the NCCL documentation's "one device per process" example does.
/// Collectives are queued on CUDA's legacy default stream, the stream TorchSharp's kernels run on, so they are ordered
/// after the backward pass that wrote the gradients and before the optimizer step that reads them.
/// </summary>
internal static unsafe class Nccl
{
    private const int NcclFloat32 = 7, NcclSum = 0;

    [StructLayout(LayoutKind.Sequential, Size = 128)]
    private struct UniqueId { private byte _first; }

    private static nint _lib, _comm;
    private static delegate* unmanaged<UniqueId*, int> _getUniqueId;
    private static delegate* unmanaged<nint*, int, UniqueId, int, int> _commInitRank;
    private static delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int> _allReduce;
    private static delegate* unmanaged<nint, int> _commDestroy;
    private static delegate* unmanaged<int, nint> _errorString;
    private static delegate* unmanaged<int*, int> _version;

    /// <summary>Where the library was found and its version, once loaded.</summary>
    public static string? Description { get; private set; }

    /// <summary>Loads NCCL and makes this rank's communicator (<paramref name="shareId"/> carries rank 0's id to the others).</summary>
    public static void Init(int rank, int size, Action<Span<byte>> shareId)
    {
        if (_comm != 0) return;
        var file = Environment.GetEnvironmentVariable("STRATA_NCCL") is { Length: > 0 } f ? f : "libnccl.so.2";
        if (!NativeLibrary.TryLoad(file, out var lib))
            throw new StrataException(
                $"{file} cannot be loaded: CUDA training across ranks needs NCCL (PyTorch's nvidia/nccl/lib or the CUDA install on " +
                    "LD_LIBRARY_PATH, or STRATA_NCCL=/path/libnccl.so.2)");
        nint F(string name) => NativeLibrary.GetExport(lib, name);
        _getUniqueId = (delegate* unmanaged<UniqueId*, int>)F("ncclGetUniqueId");
        _commInitRank = (delegate* unmanaged<nint*, int, UniqueId, int, int>)F("ncclCommInitRank");
        _allReduce = (delegate* unmanaged<void*, void*, nuint, int, int, nint, nint, int>)F("ncclAllReduce");
        _commDestroy = (delegate* unmanaged<nint, int>)F("ncclCommDestroy");
        _errorString = (delegate* unmanaged<int, nint>)F("ncclGetErrorString");
        _version = (delegate* unmanaged<int*, int>)F("ncclGetVersion");
        _lib = lib;
        int v;
        Check(_version(&v), "ncclGetVersion");
        Description = $"{file} (NCCL {v / 10000}.{v / 100 % 100}.{v % 100})";
        UniqueId id;
        if (rank == 0) Check(_getUniqueId(&id), "ncclGetUniqueId");
        shareId(new Span<byte>(&id, sizeof(UniqueId)));
        nint comm;
        Check(_commInitRank(&comm, size, id, rank), "ncclCommInitRank");
        _comm = comm;
    }

    /// <summary>In-place sum over the ranks of <paramref name="count"/> float32 values in CUDA memory.</summary>
    public static void AllReduceSum(nint data, long count) =>
        Check(_allReduce((void*)data, (void*)data, (nuint)count, NcclFloat32, NcclSum, _comm, 0), "ncclAllReduce");

    public static void Destroy()
    {
        if (_comm != 0) _commDestroy(_comm);
        _comm = 0;
    }

    private static void Check(int rc, string call)
    {
        if (rc != 0) throw new StrataException($"{call} failed: {Marshal.PtrToStringAnsi(_errorString(rc))} (NCCL error {rc})");
    }
}
