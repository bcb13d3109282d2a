// A frozen token interface: a [V, k] table (the k-bit id code, a random code, a visual glyph embedding, a loaded
// file) lifted to d_model. k up to d_model: dimension j carries column floor(j k / d), which is repeat_interleave(d/k)
// as the paper when k divides d (each column on d/k consecutive dimensions), or tiling (column j mod k); k above
// d_model with lift "truncate": the first d_model columns (for PCA-ordered tables the leading principal components),
// rows L2-normalised again. The table is stored as "weight" and known by its hash.
using Strata.Util;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Strata.Substrates;

public sealed class FrozenTableSubstrate : Substrate
{
    [ComponentName(Name = "weight")] private readonly Parameter _table;   // [V, k], frozen
    private readonly SubstrateSpec _spec;
    private readonly int _repeat;
    private readonly Tensor? _columns;                                       // [d] column of each dimension, when k does not divide d
    private string? _hash;

    /// <param name="table">the full table, or null for an empty one of the right shape (to be loaded from a checkpoint)</param>
    public FrozenTableSubstrate(SubstrateSpec spec, int vocab, int dModel, int tableWidth, Tensor? table, Device? device = null) : base(nameof(
        FrozenTableSubstrate))
    {
        _spec = spec;
        spec.CheckLift(tableWidth, dModel);
        int k = spec.Lift == SubstrateLift.Truncate ? dModel : tableWidth;
        _repeat = dModel / k;
        if (dModel % k != 0)
        {
            var columns = Enumerable.Range(0, dModel).Select(j => spec.Lift == SubstrateLift.Tile ? (long)(j % k) : (long)j * k / dModel).ToArray();
            _columns = (device?.type == DeviceType.META ? torch.empty([dModel], ScalarType.Int64, device: device) : torch.tensor(columns, device: device))
                .DetachFromDisposeScope();
        }
        Tensor value;
        if (table is null || device?.type == DeviceType.META) value = torch.empty([vocab, k], device: device);
        else
        {
            if (table.shape[0] != vocab)
                throw new StrataException($"substrate: the table has {table.shape[0]:N0} rows but the model's vocabulary is {vocab:N0}");
            using var typed = spec.Lift == SubstrateLift.Truncate ? Truncate(table, k) : table.to(ScalarType.Float32);
            value = typed.to(device ?? CPU);                                         // (a handle of its own; the data is shared, not copied)
        }
        _table = new Parameter(value, requires_grad: false);
        RegisterComponents();
    }

    private static Tensor Truncate(Tensor table, int k)
    {
        using var kept = table.narrow(1, 0, k).to(ScalarType.Float32);
        using Scalar least = 1e-12;
        using var norms = kept.norm(1, true, 2).clamp_min(least);
        return kept / norms;
    }

    public override SubstrateSpec Spec => _spec;
    public override bool IsFrozen => true;
    public Tensor Table => _table;

    /// <summary>sha256 of the table this model reads (computed once; the table never changes).</summary>
    public override string? ContentHash => _hash ??= SubstrateTables.ContentHash(_table);

    /// <summary>Forget the cached hash (after the table was loaded from a file).</summary>
    public void Reloaded() => _hash = null;

    /// <summary>The [V, d_model] matrix the substrate is after lifting: what an ordinary embedding would hold (export).</summary>
    public Tensor Lifted()
    {
        using var ids = Scalars.Arange(0, _table.shape[0], ScalarType.Int64, _table.device).unsqueeze(0);
        using var _ = torch.no_grad();
        using var rows = forward(ids);
        return rows.squeeze(0).contiguous();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _columns?.Dispose();
        base.Dispose(disposing);
    }

    /// <param name="idx">[B, T] int64 token ids</param>
    public override Tensor forward(Tensor idx)
    {
        using var flat = _table.index_select(0, idx.reshape(-1));                  // [B*T, k]
        using var codes = flat.view(idx.shape[0], idx.shape[1], -1);             // [B, T, k]
        if (_columns is not null) return codes.index_select(2, _columns);            // dimension j <- column floor(j k / d) (or j mod k)
        if (_repeat == 1) return codes.alias();
        return _spec.Lift == SubstrateLift.Tile
            ? codes.repeat(1, 1, _repeat)                                          // column j on dims j, j+k, ...
            : codes.repeat_interleave(_repeat, dim: -1);                           // column j on dims j*r..j*r+r-1
    }
}
