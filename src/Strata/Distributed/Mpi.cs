using System.Runtime.InteropServices;
using Strata.Util;

namespace Strata.Distributed;

/// <summary>
/// The few MPI calls data-parallel training needs, bound at run time to Open MPI's libmpi.so.40 (Debian's libopenmpi3).
/// Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are the addresses of exported globals
/// (<c>ompi_mpi_comm_world</c>, ...), and MPI_IN_PLACE is <c>(void*)1</c> (Open MPI's mpi.h). The library is opened
/// with RTLD_GLOBAL so that the plugins Open MPI loads itself resolve its symbols, as mpi4py does. A single-process
/// run never loads it.
/// </summary>
internal static unsafe class Mpi
{
    private const int RtldNow = 0x2, RtldGlobal = 0x100;
    public const string Library = "libmpi.so.40";

    [DllImport("libc.so.6", EntryPoint = "dlopen")]
    private static extern nint DlOpen(string file, int flags);

    [DllImport("libc.so.6", EntryPoint = "dlerror")]
    private static extern nint DlError();

    private static nint _lib;
    private static delegate* unmanaged<int*, byte***, int> _init;
    private static delegate* unmanaged<int*, int> _initialized, _finalized;
    private static delegate* unmanaged<int> _finalize;
    private static delegate* unmanaged<nint, int*, int> _commRank, _commSize;
    private static delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduce;
    private static delegate* unmanaged<void*, int, nint, int, nint, int> _bcast;
    private static delegate* unmanaged<nint, int> _barrier;
    private static delegate* unmanaged<nint, int, int> _abort;

    public static nint CommWorld { get; private set; }
    public static nint Float { get; private set; }
    public static nint Double { get; private set; }
    public static nint Byte { get; private set; }
    public static nint Sum { get; private set; }
    private static readonly void* InPlace = (void*)1;

    /// <summary>Opens libmpi and MPI_Init's it (once per process).</summary>
    public static void Init()
    {
        if (_lib != 0) return;
        var lib = DlOpen(Library, RtldNow | RtldGlobal);
        if (lib == 0)
            throw new StrataException(
                $"this process was started by an MPI launcher but {Library} cannot be loaded ({Marshal.PtrToStringAnsi(DlError())}): install Open " +
                    "MPI (Debian: apt-get install openmpi-bin libopenmpi3)");
        nint F(string name) => NativeLibrary.GetExport(lib, name);
        _init = (delegate* unmanaged<int*, byte***, int>)F("MPI_Init");
        _initialized = (delegate* unmanaged<int*, int>)F("MPI_Initialized");
        _finalized = (delegate* unmanaged<int*, int>)F("MPI_Finalized");
        _finalize = (delegate* unmanaged<int>)F("MPI_Finalize");
        _commRank = (delegate* unmanaged<nint, int*, int>)F("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<nint, int*, int>)F("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)F("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)F("MPI_Bcast");
        _barrier = (delegate* unmanaged<nint, int>)F("MPI_Barrier");
        _abort = (delegate* unmanaged<nint, int, int>)F("MPI_Abort");
        (CommWorld, Float, Double, Byte, Sum) = (F("ompi_mpi_comm_world"), F("ompi_mpi_float"), F("ompi_mpi_double"), F("ompi_mpi_byte"), F("ompi_mpi_op_sum"));
        int done;
        Check(_initialized(&done), "MPI_Initialized");
        if (done == 0) Check(_init(null, null), "MPI_Init");
        _lib = lib;
    }

    public static int Rank { get { int r; Check(_commRank(CommWorld, &r), "MPI_Comm_rank"); return r; } }
    public static int Size { get { int s; Check(_commSize(CommWorld, &s), "MPI_Comm_size"); return s; } }

    /// <summary>In-place sum over the ranks of <paramref name="count"/> elements of <paramref name="type"/>.</summary>
    public static void AllReduceSum(void* data, int count, nint type) => Check(_allreduce(InPlace, data, count, type, Sum, CommWorld), "MPI_Allreduce");

    public static void Broadcast(void* data, int bytes, int root) => Check(_bcast(data, bytes, Byte, root, CommWorld), "MPI_Bcast");

    public static void Barrier() => Check(_barrier(CommWorld), "MPI_Barrier");

    /// <summary>Ends every rank of the job (after one of them found it cannot go on).</summary>
    public static void Abort(int code)
    {
        if (_lib != 0) _abort(CommWorld, code);
    }

    public static void End()
    {
        if (_lib == 0) return;
        int done;
        _finalized(&done);
        if (done == 0) _finalize();
    }

    private static void Check(int rc, string call)
    {
        if (rc != 0) throw new StrataException($"{call} failed (MPI error {rc})");
    }
}
