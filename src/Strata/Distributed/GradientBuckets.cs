using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Distributed;

/// <summary>
/// The gradients of the parameters that train, averaged over the ranks in a few large all-reduces: parameters are
/// packed in order into flat float32 buckets of at most <see cref="BucketBytes"/> (PyTorch DDP's default is 25 MB),
/// each copied in, reduced and copied back. Frozen parameters have no gradient and send nothing, so a constructive
/// stage communicates only its active set. The reduction runs after the backward pass (TorchSharp exposes no
/// per-parameter gradient hooks to start a bucket while the rest of the backward pass runs).
/// </summary>
internal sealed class GradientBuckets : IDisposable
{
    public const long BucketBytes = 32L << 20;

    private readonly ProcessGroup _group;
    private readonly List<(Tensor Flat, List<(Tensor Param, long Offset)> Members)> _buckets = new();

    public GradientBuckets(ProcessGroup group, IEnumerable<Tensor> parameters)
    {
        _group = group;
        if (!group.Reduces) return;
        var members = new List<(Tensor, long)>();
        long size = 0;
        Device? device = null;
        foreach (var p in parameters)
        {
            if (members.Count > 0 && (size + p.numel()) * sizeof(float) > BucketBytes) Close();
            members.Add((p, size));
            size += p.numel();
            device = p.device;
        }
        if (members.Count > 0) Close();

        void Close()
        {
            _buckets.Add((torch.empty(size, ScalarType.Float32, device: device), members));
            (members, size) = (new List<(Tensor, long)>(), 0);
        }
    }

    /// <summary>Parameters' elements per all-reduce, bucket by bucket.</summary>
    public IReadOnlyList<long> Sizes => _buckets.Select(b => b.Flat.numel()).ToList();

    /// <summary>Replaces every gradient by its mean over the ranks (a parameter without a gradient counts as zeros).</summary>
    public void Reduce()
    {
        using var noGrad = torch.no_grad();
        foreach (var (flat, members) in _buckets)
        {
            foreach (var (p, offset) in members)
            {
                var part = flat.narrow(0, offset, p.numel());
                if (p.grad is { } g) part.copy_(g.reshape(-1));
                else part.zero_();
            }
            _group.AllReduceMean(flat);
            foreach (var (p, offset) in members)
                p.grad?.copy_(flat.narrow(0, offset, p.numel()).view(p.shape));
        }
    }

    public void Dispose()
    {
        foreach (var (flat, _) in _buckets) flat.Dispose();
        _buckets.Clear();
    }
}
