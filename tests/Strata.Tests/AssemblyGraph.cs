using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using System.Text;

namespace Strata.Tests;

/// <summary>
/// What the compiled library references, read off its IL and its portable PDB (nothing from the source text): every
/// type of the assembly with its folder (the namespace under Strata) and its source files, and every reference from a
/// method body (calls, fields, type tokens, locals), a signature (fields, parameters, returns), a base type or an
/// interface to another type of the assembly. From those: the graph of folders and, inside each folder, the graph of
/// files; and the public surface (types and members a library user sees).
/// </summary>
internal sealed class AssemblyGraph
{
    /// <summary>Folder -> folder (different folders), with one example reference each.</summary>
    public Dictionary<(string From, string To), string> FolderEdges { get; } = new();
    /// <summary>File -> file inside one folder (paths relative to the library's folder).</summary>
    public Dictionary<(string From, string To), string> FileEdges { get; } = new();
    /// <summary>Every source file of the library and its folder.</summary>
    public Dictionary<string, string> FileFolder { get; } = new();
    public int PublicTypes { get; private set; }
    public int PublicMembers { get; private set; }

    // PDB custom debug information: the documents of types that have no method bodies (enums, interfaces, ...)
    private static readonly Guid TypeDefinitionDocuments = new("932E74BC-DCA9-4541-B1B3-90F0A4A0D7D4");

    private readonly MetadataReader _md;
    private readonly MetadataReader _pdb;
    private readonly string _sourceRoot;
    private readonly Dictionary<TypeDefinitionHandle, TypeDefinitionHandle> _outer = new();
    private readonly Dictionary<TypeDefinitionHandle, HashSet<string>> _files = new();

    private AssemblyGraph(MetadataReader md, MetadataReader pdb, string sourceRoot) => (_md, _pdb, _sourceRoot) = (md, pdb, sourceRoot);

    /// <summary>Reads <paramref name="dll"/> and the .pdb beside it; files are named relative to <paramref name="sourceRoot"/>
    /// (files elsewhere, such as generated code under obj/, are left out).</summary>
    public static AssemblyGraph Read(string dll, string sourceRoot)
    {
        using var pe = new PEReader(File.OpenRead(dll));
        using var pdbProvider = MetadataReaderProvider.FromPortablePdbStream(File.OpenRead(Path.ChangeExtension(dll, ".pdb")));
        var graph = new AssemblyGraph(pe.GetMetadataReader(), pdbProvider.GetMetadataReader(), Path.GetFullPath(sourceRoot));
        graph.Build(pe);
        return graph;
    }

    private string? Folder(TypeDefinitionHandle t)
    {
        var ns = _md.GetString(_md.GetTypeDefinition(_outer[t]).Namespace);
        if (ns != "Strata" && !ns.StartsWith("Strata.", StringComparison.Ordinal)) return null;
        return ns == "Strata" ? "" : ns["Strata.".Length..].Split('.')[0];
    }

    private string Name(TypeDefinitionHandle t)
    {
        var d = _md.GetTypeDefinition(t);
        var name = _md.GetString(d.Name);
        return d.GetDeclaringType().IsNil ? $"{_md.GetString(d.Namespace)}.{name}" : $"{Name(d.GetDeclaringType())}+{name}";
    }

    private string? Relative(DocumentHandle h)
    {
        var path = Path.GetFullPath(_pdb.GetString(_pdb.GetDocument(h).Name));
        return path.StartsWith(_sourceRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? Path.GetRelativePath(_sourceRoot, path) : null;
    }

    private void Build(PEReader pe)
    {
        foreach (var t in _md.TypeDefinitions)
        {
            var o = t;
            while (!_md.GetTypeDefinition(o).GetDeclaringType().IsNil) o = _md.GetTypeDefinition(o).GetDeclaringType();
            _outer[t] = o;
        }
        // the files of each outermost type: its and its nested types' method bodies, or the PDB's record for bodiless types
        foreach (var t in _md.TypeDefinitions)
        {
            var files = _files.TryGetValue(_outer[t], out var f) ? f : _files[_outer[t]] = new HashSet<string>();
            foreach (var m in _md.GetTypeDefinition(t).GetMethods())
            {
                var doc = _pdb.GetMethodDebugInformation(m).Document;
                if (!doc.IsNil && Relative(doc) is { } file) files.Add(file);
            }
            foreach (var c in _pdb.GetCustomDebugInformation(t))
            {
                var info = _pdb.GetCustomDebugInformation(c);
                if (_pdb.GetGuid(info.Kind) != TypeDefinitionDocuments) continue;
                var blob = _pdb.GetBlobReader(info.Value);
                while (blob.RemainingBytes > 0)
                    if (Relative(MetadataTokens.DocumentHandle(blob.ReadCompressedInteger())) is { } file) files.Add(file);
            }
        }
        foreach (var (t, files) in _files)
            if (Folder(t) is { } folder)
                foreach (var file in files) FileFolder[file] = folder;

        var provider = new TypeCollector();
        foreach (var t in _md.TypeDefinitions)
        {
            if (Folder(t) is null) continue;
            var def = _md.GetTypeDefinition(t);
            var typeFiles = _files[_outer[t]];
            void FromType(TypeDefinitionHandle target, string how) { foreach (var file in typeFiles) Add(t, file, target, how); }
            foreach (var target in Types(def.BaseType, provider)) FromType(target, "base type");
            foreach (var i in def.GetInterfaceImplementations())
                foreach (var target in Types(_md.GetInterfaceImplementation(i).Interface, provider)) FromType(target, "interface");
            foreach (var fh in def.GetFields())
                foreach (var target in _md.GetFieldDefinition(fh).DecodeSignature(provider, null)) FromType(target,
                    $"field {_md.GetString(_md.GetFieldDefinition(fh).Name)}");
            foreach (var mh in def.GetMethods())
            {
                var method = _md.GetMethodDefinition(mh);
                var doc = _pdb.GetMethodDebugInformation(mh).Document;
                var files = !doc.IsNil && Relative(doc) is { } f ? new HashSet<string> { f } : typeFiles;
                string where = $"{Name(t)}.{_md.GetString(method.Name)}";
                void FromMethod(TypeDefinitionHandle target) { foreach (var file in files) Add(t, file, target, where); }
                var sig = method.DecodeSignature(provider, null);
                foreach (var target in sig.ReturnType.Concat(sig.ParameterTypes.SelectMany(p => p))) FromMethod(target);
                if (method.RelativeVirtualAddress == 0) continue;
                var body = pe.GetMethodBody(method.RelativeVirtualAddress);
                if (!body.LocalSignature.IsNil)
                    foreach (var target in _md.GetStandaloneSignature(body.LocalSignature).DecodeLocalSignature(provider, null).SelectMany(l =>
                        l)) FromMethod(target);
                foreach (var token in Tokens(body.GetILReader()))
                    foreach (var target in Types(token, provider)) FromMethod(target);
            }
        }
        CountPublicSurface();
    }

    private void Add(TypeDefinitionHandle from, string fromFile, TypeDefinitionHandle to, string how)
    {
        var (a, b) = (Folder(from), Folder(to));
        if (a is null || b is null || _outer[from] == _outer[to]) return;
        if (a != b) FolderEdges.TryAdd((a, b), $"{how} -> {Name(to)}");
        else
            foreach (var toFile in _files[_outer[to]])
                if (toFile != fromFile) FileEdges.TryAdd((fromFile, toFile), $"{how} -> {Name(to)}");
    }

    /// <summary>The assembly's types a metadata token or handle names (a member's declaring type, a generic instance's arguments).</summary>
    private IEnumerable<TypeDefinitionHandle> Types(EntityHandle h, TypeCollector provider)
    {
        if (h.IsNil) return [];
        switch (h.Kind)
        {
            case HandleKind.TypeDefinition: return [(TypeDefinitionHandle)h];
            case HandleKind.TypeSpecification: return _md.GetTypeSpecification((TypeSpecificationHandle)h).DecodeSignature(provider, null);
            case HandleKind.MethodDefinition: return [_md.GetMethodDefinition((MethodDefinitionHandle)h).GetDeclaringType()];
            case HandleKind.FieldDefinition: return [_md.GetFieldDefinition((FieldDefinitionHandle)h).GetDeclaringType()];
            case HandleKind.MemberReference:
                var r = _md.GetMemberReference((MemberReferenceHandle)h);
                var parent = Types(r.Parent, provider);
                return r.GetKind() == MemberReferenceKind.Method
                    ? parent.Concat(r.DecodeMethodSignature(provider, null) is var s ? s.ReturnType.Concat(s.ParameterTypes.SelectMany(p => p)) : [])
                    : parent.Concat(r.DecodeFieldSignature(provider, null));
            case HandleKind.MethodSpecification:
                var spec = _md.GetMethodSpecification((MethodSpecificationHandle)h);
                return Types(spec.Method, provider).Concat(spec.DecodeSignature(provider, null).SelectMany(a => a));
            default: return [];
        }
    }

    private static readonly Dictionary<short, OperandType> Operands = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value, o => o.OperandType);

    /// <summary>The metadata tokens in a method body's IL.</summary>
    private static IEnumerable<EntityHandle> Tokens(BlobReader il)
    {
        var found = new List<EntityHandle>();
        while (il.RemainingBytes > 0)
        {
            short code = il.ReadByte();
            if (code == 0xFE) code = (short)(0xFE00 | il.ReadByte());
            switch (Operands[code])
            {
                case OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineTok or OperandType.InlineType:
                    found.Add(MetadataTokens.EntityHandle(il.ReadInt32()));
                    break;
                case OperandType.InlineSwitch:
                    int targets = il.ReadInt32();                                             // (read before the offset moves)
                    il.Offset += 4 * targets;
                    break;
                case OperandType.InlineI8 or OperandType.InlineR: il.Offset += 8; break;
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: il.Offset += 1; break;
                case OperandType.InlineVar: il.Offset += 2; break;
                default: il.Offset += 4; break;                                            // branch targets, int32, float32, strings, signatures
            }
        }
        return found;
    }

    /// <summary>Public types (nested ones public all the way out) and their public or protected members: methods other
    /// than accessors, properties, events and fields.</summary>
    private void CountPublicSurface()
    {
        bool Visible(TypeDefinition d) => (d.Attributes & TypeAttributes.VisibilityMask) switch
        {
            TypeAttributes.Public => true,
            TypeAttributes.NestedPublic or TypeAttributes.NestedFamily or TypeAttributes.NestedFamORAssem => Visible(_md.GetTypeDefinition(
                d.GetDeclaringType())),
            _ => false,
        };
        static bool Member(MethodAttributes a) => (
            a & MethodAttributes.MemberAccessMask) is MethodAttributes.Public or MethodAttributes.Family or MethodAttributes.FamORAssem;
        foreach (var t in _md.TypeDefinitions)
        {
            var d = _md.GetTypeDefinition(t);
            if (!Visible(d) || Folder(t) is null) continue;
            PublicTypes++;
            PublicMembers += d.GetMethods().Select(_md.GetMethodDefinition).Count(m => Member(m.Attributes) && (
                m.Attributes & MethodAttributes.SpecialName) == 0);
            PublicMembers += d.GetProperties().Count(p => _md.GetPropertyDefinition(p).GetAccessors() is var a
                && new[] { a.Getter, a.Setter }.Any(h => !h.IsNil && Member(_md.GetMethodDefinition(h).Attributes)));
            PublicMembers += d.GetEvents().Count(e => Member(_md.GetMethodDefinition(_md.GetEventDefinition(e).GetAccessors().Adder).Attributes));
            PublicMembers += d.GetFields().Count(f => (_md.GetFieldDefinition(
                f).Attributes & FieldAttributes.FieldAccessMask) is FieldAttributes.Public or FieldAttributes.Family
                && (_md.GetFieldDefinition(f).Attributes & FieldAttributes.SpecialName) == 0);
        }
    }

    /// <summary>The groups of nodes that reach each other (strongly connected, more than one node): the cycles.</summary>
    public static List<List<string>> Cycles(IEnumerable<(string From, string To)> edges)
    {
        var next = edges.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToList());
        var nodes = next.Keys.Concat(next.Values.SelectMany(v => v)).Distinct().Order(StringComparer.Ordinal).ToList();
        var reach = nodes.ToDictionary(n => n, n => Reachable(n, next));
        return nodes.Select(n => nodes.Where(m => m == n || reach[n].Contains(m) && reach[m].Contains(n)).ToList())
            .Where(g => g.Count > 1).DistinctBy(g => string.Join(",", g)).ToList();
    }

    private static HashSet<string> Reachable(string from, Dictionary<string, List<string>> next)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>([from]);
        while (stack.TryPop(out var n))
            foreach (var m in next.GetValueOrDefault(n) ?? [])
                if (seen.Add(m)) stack.Push(m);
        return seen;
    }

    /// <summary>The folder graph, the file cycles and the public surface, as text.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.AppendLine("Folder graph of src/Strata, read off the compiled assembly (a -> b: a type in a uses a type in b):");
        foreach (var g in FolderEdges.Keys.GroupBy(e => e.From).OrderBy(g => g.Key, StringComparer.Ordinal))
            sb.AppendLine($"  {(g.Key == "" ? "(root)" : g.Key)} -> {string.Join(", ", g.Select(e => e.To).Order(StringComparer.Ordinal))}");
        var cycles = Cycles(FolderEdges.Keys);
        sb.AppendLine(cycles.Count == 0 ? "Folder cycles: none" : "Folder cycles: " + string.Join("; ", cycles.Select(c => string.Join(" <-> ", c))));
        var fileCycles = Cycles(FileEdges.Keys);
        sb.AppendLine(fileCycles.Count == 0 ? "File cycles inside a folder: none" : "File cycles inside a folder:\n" + string.Join("\n",
            fileCycles.Select(c => "  " + string.Join(" <-> ", c))));
        sb.AppendLine($"Public surface: {PublicTypes} types, {PublicMembers} members");
        return sb.ToString();
    }
}

/// <summary>Collects the assembly's own types named in a signature (generic arguments included).</summary>
internal sealed class TypeCollector : ISignatureTypeProvider<ImmutableArray<TypeDefinitionHandle>, object?>
{
    private static readonly ImmutableArray<TypeDefinitionHandle> None = [];
    public ImmutableArray<TypeDefinitionHandle> GetArrayType(ImmutableArray<TypeDefinitionHandle> e, ArrayShape shape) => e;
    public ImmutableArray<TypeDefinitionHandle> GetByReferenceType(ImmutableArray<TypeDefinitionHandle> e) => e;
    public ImmutableArray<TypeDefinitionHandle> GetFunctionPointerType(MethodSignature<ImmutableArray<TypeDefinitionHandle>> s) =>
        s.ReturnType.AddRange(s.ParameterTypes.SelectMany(p => p));
    public ImmutableArray<TypeDefinitionHandle> GetGenericInstantiation(ImmutableArray<TypeDefinitionHandle> g,
        ImmutableArray<ImmutableArray<TypeDefinitionHandle>> args) => g.AddRange(args.SelectMany(a => a));
    public ImmutableArray<TypeDefinitionHandle> GetGenericMethodParameter(object? c, int index) => None;
    public ImmutableArray<TypeDefinitionHandle> GetGenericTypeParameter(object? c, int index) => None;
    public ImmutableArray<TypeDefinitionHandle> GetModifiedType(ImmutableArray<TypeDefinitionHandle> m, ImmutableArray<TypeDefinitionHandle> u,
        bool required) => u;
    public ImmutableArray<TypeDefinitionHandle> GetPinnedType(ImmutableArray<TypeDefinitionHandle> e) => e;
    public ImmutableArray<TypeDefinitionHandle> GetPointerType(ImmutableArray<TypeDefinitionHandle> e) => e;
    public ImmutableArray<TypeDefinitionHandle> GetPrimitiveType(PrimitiveTypeCode t) => None;
    public ImmutableArray<TypeDefinitionHandle> GetSZArrayType(ImmutableArray<TypeDefinitionHandle> e) => e;
    public ImmutableArray<TypeDefinitionHandle> GetTypeFromDefinition(MetadataReader r, TypeDefinitionHandle h, byte kind) => [h];
    public ImmutableArray<TypeDefinitionHandle> GetTypeFromReference(MetadataReader r, TypeReferenceHandle h, byte kind) => None;
    public ImmutableArray<TypeDefinitionHandle> GetTypeFromSpecification(MetadataReader r, object? c, TypeSpecificationHandle h, byte kind) =>
        r.GetTypeSpecification(h).DecodeSignature(this, c);
}
