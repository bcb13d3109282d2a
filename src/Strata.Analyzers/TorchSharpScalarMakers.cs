using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace Strata.Analyzers;

/// <summary>
/// The members of a TorchSharp assembly that make a <c>Scalar</c> they do not hold through the native call that reads
/// it: those whose IL converts a number to a Scalar (<c>Scalar.op_Implicit</c>, <c>ToScalar</c>, the constructor), and
/// every member that calls one of those, transitively. <c>a + b</c> on two tensors is one: <c>op_Addition</c> calls
/// <c>add(target)</c>, which calls <c>add(target, 1)</c>. Read from the assembly's IL, so it follows the TorchSharp
/// version the project references. Keys are documentation comment ids, as Roslyn's
/// <c>ISymbol.GetDocumentationCommentId()</c> writes them.
/// </summary>
internal static class TorchSharpScalarMakers
{
    private static readonly ConcurrentDictionary<(string, DateTime), ImmutableHashSet<string>> Cache = new();

    public static ImmutableHashSet<string> Of(string assemblyPath)
    {
#pragma warning disable RS1035 // the analyzer reads the referenced assembly's IL, which Roslyn's symbols do not carry
        var stamp = File.GetLastWriteTimeUtc(assemblyPath);
        return Cache.GetOrAdd((assemblyPath, stamp), _ =>
        {
            using var stream = File.OpenRead(assemblyPath);
#pragma warning restore RS1035
            using var pe = new PEReader(stream);
            return Scan(pe);
        });
    }

    private static ImmutableHashSet<string> Scan(PEReader pe)
    {
        var md = pe.GetMetadataReader();
        var ids = new Dictionary<MethodDefinitionHandle, string>();
        var callers = new Dictionary<MethodDefinitionHandle, List<MethodDefinitionHandle>>();
        var makers = new HashSet<MethodDefinitionHandle>();
        var provider = new DocumentationIdTypes();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            foreach (var methodHandle in md.GetTypeDefinition(typeHandle).GetMethods())
            {
                ids[methodHandle] = DocumentationId(md, methodHandle, provider);
            }
        }
        foreach (var pair in ids)
        {
            var method = md.GetMethodDefinition(pair.Key);
            bool ofScalar = IsScalarType(md, method.GetDeclaringType());
            if (method.RelativeVirtualAddress == 0 || ofScalar) continue;
            var il = pe.GetMethodBody(method.RelativeVirtualAddress).GetILReader();
            foreach (var callee in CalledMethods(il))
            {
                if (MakesScalar(md, callee)) makers.Add(pair.Key);
                else if (callee.Kind == HandleKind.MethodDefinition)
                {
                    var target = (MethodDefinitionHandle)callee;
                    if (!callers.TryGetValue(target, out var list)) callers[target] = list = new List<MethodDefinitionHandle>();
                    list.Add(pair.Key);
                }
            }
        }
        var pending = new Stack<MethodDefinitionHandle>(makers);
        while (pending.Count > 0)
        {
            if (!callers.TryGetValue(pending.Pop(), out var list)) continue;
            foreach (var caller in list)
                if (makers.Add(caller)) pending.Push(caller);
        }
        return makers.Select(m => ids[m]).ToImmutableHashSet();
    }

    /// <summary>A call that makes a Scalar: the conversions from numbers, the ToScalar extensions, the constructor.</summary>
    private static bool MakesScalar(MetadataReader md, EntityHandle callee)
    {
        if (callee.Kind == HandleKind.MethodSpecification) callee = md.GetMethodSpecification((MethodSpecificationHandle)callee).Method;
        string name;
        EntityHandle owner;
        if (callee.Kind == HandleKind.MethodDefinition)
        {
            var m = md.GetMethodDefinition((MethodDefinitionHandle)callee);
            (name, owner) = (md.GetString(m.Name), m.GetDeclaringType());
        }
        else if (callee.Kind == HandleKind.MemberReference)
        {
            var m = md.GetMemberReference((MemberReferenceHandle)callee);
            (name, owner) = (md.GetString(m.Name), m.Parent);
        }
        else return false;
        if (name == "ToScalar") return true;
        return (name == "op_Implicit" || name == ".ctor") && IsScalarType(md, owner);
    }

    private static bool IsScalarType(MetadataReader md, EntityHandle type) => type.Kind switch
    {
        HandleKind.TypeDefinition => md.GetString(md.GetTypeDefinition((TypeDefinitionHandle)type).Name) == "Scalar"
            && md.GetString(md.GetTypeDefinition((TypeDefinitionHandle)type).Namespace) == "TorchSharp",
        HandleKind.TypeReference => md.GetString(md.GetTypeReference((TypeReferenceHandle)type).Name) == "Scalar"
            && md.GetString(md.GetTypeReference((TypeReferenceHandle)type).Namespace) == "TorchSharp",
        _ => false,
    };

    private static string DocumentationId(MetadataReader md, MethodDefinitionHandle handle, DocumentationIdTypes provider)
    {
        var method = md.GetMethodDefinition(handle);
        var signature = method.DecodeSignature(provider, null);
        var name = md.GetString(method.Name).Replace('.', '#');
        if (signature.GenericParameterCount > 0) name += "``" + signature.GenericParameterCount;
        var id = "M:" + provider.GetTypeFromDefinition(md, method.GetDeclaringType(), 0) + "." + name;
        if (signature.ParameterTypes.Length > 0) id += "(" + string.Join(",", signature.ParameterTypes) + ")";
        if (name is "op_Implicit" or "op_Explicit") id += "~" + signature.ReturnType;
        return id;
    }

    /// <summary>The method tokens of call, callvirt and newobj instructions in a method body.</summary>
    private static IEnumerable<EntityHandle> CalledMethods(BlobReader il)
    {
        var found = new List<EntityHandle>();
        while (il.RemainingBytes > 0)
        {
            int op = il.ReadByte();
            if (op == 0xFE) op = 0xFE00 | il.ReadByte();
            if (op is 0x28 or 0x6F or 0x73)
            {
                found.Add(MetadataTokens.EntityHandle(il.ReadInt32()));
                continue;
            }
            if (op == 0x45)
            {
                int count = il.ReadInt32();
                il.Offset += 4 * count;
                continue;
            }
            il.Offset += OperandSize(op);
        }
        return found;
    }

    /// <summary>Operand bytes of an IL opcode (ECMA-335 partition III), other than call, callvirt, newobj and switch.</summary>
    private static int OperandSize(int op) => op switch
    {
        0x0E or 0x0F or 0x10 or 0x11 or 0x12 or 0x13 or 0x1F or 0xDE => 1,   // short local/argument, ldc.i4.s, leave.s
        >= 0x2B and <= 0x37 => 1,                                          // short branches
        0x20 or 0x22 or 0x27 or 0x29 => 4,                                 // ldc.i4, ldc.r4, jmp, calli
        >= 0x38 and <= 0x44 => 4,                                          // long branches
        >= 0x70 and <= 0x7F and not 0x7A => 4,                             // tokens: ldstr .. stsfld (not throw)
        0x79 or 0x80 or 0x81 or 0x8C or 0x8D or 0x8F or 0xA3 or 0xA4 or 0xA5 => 4,
        0xC2 or 0xC6 or 0xD0 or 0xDD => 4,                                 // refanyval, mkrefany, ldtoken, leave
        0x21 or 0x23 => 8,                                                 // ldc.i8, ldc.r8
        0xFE06 or 0xFE07 or 0xFE15 or 0xFE16 or 0xFE1C => 4,               // ldftn, ldvirtftn, initobj, constrained., sizeof
        >= 0xFE09 and <= 0xFE0E => 2,                                      // ldarg, ldarga, starg, ldloc, ldloca, stloc
        0xFE12 or 0xFE19 => 1,                                             // unaligned., no.
        _ => 0,
    };
}
