// A bare tensor saved with torch.save (the published normalized_embeddings_weights.pt): a zip archive with
// <name>/data.pkl (pickle protocol 2, a call of torch._utils._rebuild_tensor_v2 on a persistent storage reference) and
// the raw little-endian storage at <name>/data/<key>; a state dict (pytorch_model.bin) the same way, with an OrderedDict
// of such tensors. A small pickle machine for the opcodes torch.save emits, with every nesting and size bounded before
// anything is allocated (general unpicklers recurse through nested dicts and trust the archive's sizes).
using System.IO.Compression;
using System.Text;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Formats;

public static class PyTorchTensorFile
{
    private static readonly Dictionary<string, (ScalarType Type, int Size)> Storages = new()
    {
        ["FloatStorage"] = (ScalarType.Float32, 4), ["DoubleStorage"] = (ScalarType.Float64, 8), ["HalfStorage"] = (ScalarType.Float16, 2),
        ["BFloat16Storage"] = (ScalarType.BFloat16, 2), ["LongStorage"] = (ScalarType.Int64, 8), ["IntStorage"] = (ScalarType.Int32, 4),
        ["ShortStorage"] = (ScalarType.Int16, 2), ["CharStorage"] = (ScalarType.Int8, 1), ["ByteStorage"] = (ScalarType.Byte, 1), ["BoolStorage"] = (
            ScalarType.Bool, 1),
    };

    private sealed record Global(string Module, string Name);
    private sealed record StorageRef(string Key, ScalarType Type, int Size, long Elements);
    private sealed record Call(object Callable, object?[] Args);
    private sealed class Mark;

    /// <summary>Reads a torch.save file holding one tensor (or a dict of tensors) into CPU tensors.</summary>
    public static Tensor ReadTensor(string path)
    {
        var result = Read(path);
        return result as Tensor ?? throw new StrataException($"{path}: holds a {result?.GetType().Name ?? "null"}, not a bare tensor");
    }

    public static object? Read(string path)
    {
        if (!File.Exists(path)) throw new StrataException($"{path}: file not found");
        try { return ReadArchive(path); }
        catch (InvalidDataException) { throw new StrataException($"{path}: a damaged zip archive (not a PyTorch file, or cut short)"); }
    }

    private static object? ReadArchive(string path)
    {
        ZipArchive zip;
        try { zip = ZipFile.OpenRead(path); }
        catch (InvalidDataException) { throw new StrataException($"{path}: not a PyTorch zip file (legacy torch.save formats are not supported)"); }
        using var _ = zip;
        var pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
            ?? throw new StrataException($"{path}: no <name>/data.pkl in the archive");
        var prefix = pkl.FullName[..^"data.pkl".Length];
        if (pkl.Length > MaxPickleBytes) throw new StrataException(
            $"{path}: data.pkl is {pkl.Length:N0} bytes, more than a tensor file's pickle needs ({MaxPickleBytes:N0})");
        byte[] code;
        try { code = ReadAtMost(pkl, MaxPickleBytes, path); }
        catch (InvalidDataException) { throw new StrataException($"{path}: data.pkl is not readable (a damaged archive)"); }
        try
        {
            return Materialize(Run(code, path), zip, prefix, path, 0);
        }
        catch (Exception e) when (e is not (StrataException or OutOfMemoryException))
        {
            // any other failure of this small machine means a pickle it does not understand
            throw new StrataException($"{path}: data.pkl is not a tensor pickle this reader understands ({e.GetType().Name})");
        }
    }

    /// <summary>The pickle of a tensor file is a few hundred bytes; of a state dict of a large model, a few MB.</summary>
    private const long MaxPickleBytes = 64 << 20;
    /// <summary>A storage may expand at most this many times its stored size (torch.save stores them uncompressed).</summary>
    private const long MaxExpansion = 16;
    /// <summary>Dicts nested deeper than this are refused (a state dict nests 1 or 2 deep).</summary>
    private const int MaxDepth = 32;

    /// <summary>An archive entry's bytes, refusing more than <paramref name="max"/> whatever its header claims.</summary>
    private static byte[] ReadAtMost(ZipArchiveEntry entry, long max, string path)
    {
        using var s = entry.Open();
        using var ms = new MemoryStream();
        var buffer = new byte[81920];
        int n;
        while ((n = s.Read(buffer)) > 0)
        {
            if (ms.Length + n > max) throw new StrataException($"{path}: {entry.FullName} holds more than {max:N0} bytes");
            ms.Write(buffer, 0, n);
        }
        return ms.ToArray();
    }

    private static object? Run(byte[] code, string path)
    {
        var stack = new List<object?>();
        var memo = new Dictionary<long, object?>();
        int pc = 0;
        int Int(int n) { int v = 0; for (int i = 0; i < n; i++) v |= code[pc + i] << (8 * i); pc += n; return v; }
        string Str(int n) { var s = Encoding.UTF8.GetString(code, pc, n); pc += n; return s; }
        string Line() { int end = Array.IndexOf(code, (byte)'\n', pc); var s = Encoding.ASCII.GetString(code, pc, end - pc); pc = end + 1; return s; }
        object? Pop() { var v = stack[^1]; stack.RemoveAt(stack.Count - 1); return v; }
        List<object?> PopMark()
        {
            int m = stack.FindLastIndex(x => x is Mark);
            var items = stack.GetRange(m + 1, stack.Count - m - 1);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }
        while (pc < code.Length)
        {
            byte op = code[pc++];
            switch (op)
            {
                case 0x80: pc++; break;                                               // PROTO
                case 0x95: pc += 8; break;                                            // FRAME
                case (byte)'c': { var mod = Line(); stack.Add(new Global(mod, Line())); break; }   // GLOBAL
                case (byte)'q': memo[code[pc++]] = stack[^1]; break;                  // BINPUT
                case (byte)'r': memo[Int(4)] = stack[^1]; break;                      // LONG_BINPUT
                case 0x94: memo[memo.Count] = stack[^1]; break;                       // MEMOIZE
                case (byte)'h': stack.Add(memo[code[pc++]]); break;                   // BINGET
                case (byte)'j': stack.Add(memo[Int(4)]); break;                       // LONG_BINGET
                case (byte)'(': stack.Add(new Mark()); break;                         // MARK
                case (byte)'X': stack.Add(Str(Int(4))); break;                        // BINUNICODE
                case 0x8c: stack.Add(Str(code[pc++])); break;                         // SHORT_BINUNICODE
                case (byte)'K': stack.Add((long)code[pc++]); break;                   // BININT1
                case (byte)'M': stack.Add((long)Int(2)); break;                       // BININT2
                case (byte)'J': stack.Add((long)Int(4)); break;                       // BININT
                case 0x8a:                                                            // LONG1
                {
                    int n = code[pc++];
                    long v = 0;
                    for (int i = 0; i < n; i++) v |= (long)code[pc + i] << (8 * i);
                    if (n > 0 && n < 8 && (code[pc + n - 1] & 0x80) != 0) v -= 1L << (8 * n);
                    pc += n;
                    stack.Add(v);
                    break;
                }
                case (byte)'G': { var b = code.AsSpan(pc, 8).ToArray(); Array.Reverse(b); stack.Add(BitConverter.ToDouble(b)); pc += 8; break; }   // BINFLOAT
                case (byte)')': stack.Add(Array.Empty<object?>()); break;             // EMPTY_TUPLE
                case (byte)'t': stack.Add(PopMark().ToArray()); break;                // TUPLE
                case 0x85: stack.Add(new[] { Pop() }); break;                         // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }                       // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }     // TUPLE3
                case 0x88: stack.Add(true); break;                                    // NEWTRUE
                case 0x89: stack.Add(false); break;                                   // NEWFALSE
                case (byte)'N': stack.Add(null); break;                               // NONE
                case (byte)'}': stack.Add(new Dictionary<string, object?>()); break;  // EMPTY_DICT
                case (byte)']': stack.Add(new List<object?>()); break;                // EMPTY_LIST
                case (byte)'u':                                                       // SETITEMS
                {
                    var items = PopMark();
                    var d = (Dictionary<string, object?>)stack[^1]!;
                    for (int i = 0; i < items.Count; i += 2) d[(string)items[i]!] = items[i + 1];
                    break;
                }
                case (byte)'s': { var v = Pop(); var k = (string)Pop()!; ((Dictionary<string, object?>)stack[^1]!)[k] = v; break; }  // SETITEM
                case (byte)'e': { var items = PopMark(); ((List<object?>)stack[^1]!).AddRange(items); break; }                      // APPENDS
                case (byte)'a': { var v = Pop(); ((List<object?>)stack[^1]!).Add(v); break; }                                        // APPEND
                case (byte)'Q':                                                       // BINPERSID
                {
                    var t = (object?[])Pop()!;                                        // ('storage', <Global torch XStorage>, key, location, numel)
                    var g = (Global)t[1]!;
                    var (type, size) = Storages.TryGetValue(g.Name, out var s) ? s : throw new StrataException(
                        $"{path}: storage type {g.Module}.{g.Name} is not supported");
                    stack.Add(new StorageRef((string)t[2]!, type, size, (long)t[4]!));
                    break;
                }
                case (byte)'R': { var args = (object?[])Pop()!; var f = Pop()!; stack.Add(Reduce(f, args)); break; }             // REDUCE
                case (byte)'b': Pop(); break;                                         // BUILD (OrderedDict state: ignore)
                case (byte)'.': return stack.Count > 0 ? stack[^1] : null;           // STOP
                default: throw new StrataException($"{path}: data.pkl uses pickle opcode 0x{op:x2}, which this reader does not handle");
            }
        }
        throw new StrataException($"{path}: data.pkl ends without STOP");
    }

    private static object? Reduce(object f, object?[] args) => f switch
    {
        Global { Module: "collections", Name: "OrderedDict" } => new Dictionary<string, object?>(),
        Global { Module: "torch._utils", Name: "_rebuild_tensor_v2" } => new Call(f, args),
        Global g => throw new StrataException($"pickle calls {g.Module}.{g.Name}, which a tensor file should not need"),
        _ => throw new StrataException("pickle REDUCE on something that is not a global"),
    };

    private static object? Materialize(object? value, ZipArchive zip, string prefix, string path, int depth) => depth > MaxDepth
        ? throw new StrataException($"{path}: data.pkl nests more than {MaxDepth} deep")
        : value switch
        {
            Call c => Tensor(c.Args, zip, prefix, path),
            Dictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => Materialize(kv.Value, zip, prefix, path, depth + 1)),
            _ => value,
        };

    private static Tensor Tensor(object?[] a, ZipArchive zip, string prefix, string path)
    {
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        var storage = (StorageRef)a[0]!;
        long offset = (long)a[1]!;
        var size = ((object?[])a[2]!).Select(x => (long)x!).ToArray();
        var stride = ((object?[])a[3]!).Select(x => (long)x!).ToArray();
        var entry = zip.GetEntry(prefix + "data/" + storage.Key) ?? throw new StrataException($"{path}: storage data/{storage.Key} is missing");
        if (entry.Length > MaxExpansion * Math.Max(entry.CompressedLength, 1024))
            throw new StrataException($"{path}: storage data/{storage.Key} expands {entry.CompressedLength:N0} bytes into {entry.Length:N0}: " +
                                      "torch.save stores storages uncompressed, so this is a zip bomb, not a tensor");
        // sizes come from the pickle: check them against the archive before allocating anything
        if (storage.Elements < 0 || storage.Elements > entry.Length / storage.Size || entry.Length != storage.Elements * storage.Size)
            throw new StrataException(
                $"{path}: storage data/{storage.Key} holds {entry.Length:N0} bytes, the pickle says {storage.Elements:N0} elements of {storage.Size}");
        if (offset < 0 || size.Length != stride.Length || size.Any(x => x < 0) || stride.Any(x => x < 0))
            throw new StrataException($"{path}: a tensor's offset, size or stride is invalid");
        if (size.All(n => n > 0))
        {
            long last = offset;
            foreach (var (n, st) in size.Zip(stride)) last = checked(last + (n - 1) * st);
            if (last >= storage.Elements) throw new StrataException($"{path}: a tensor reaches past the end of its storage data/{storage.Key}");
        }
        var bytes = ReadAtMost(entry, entry.Length, path);
        var flat = torch.empty([storage.Elements], dtype: storage.Type);
        if (bytes.Length > 0) flat.bytes = bytes;
        using (flat)
        using (var view = flat.as_strided(size, stride, offset))
            return view.contiguous().clone();
    }
}
