using Strata.Util;
// A Linear layer that can carry a LoRA adapter (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
// Models"), as litgpt's LoRALinear: y = x W^T + b + (alpha / r) * (x A^T) B^T, with A [r, in] Kaiming-uniform and
// B [out, r] zero, so an attached adapter starts as no change. The adapter's two matrices are ordinary registered
// parameters of this module ("lora_A", "lora_B" beside "weight" and "bias"), so state dicts, checkpoints, parameter
// counts and optimizers see them with no special case; Merge folds (alpha / r) * B A into W and unregisters them, and
// the module is a plain Linear again under the Hugging Face names.
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Strata.Modeling;

/// <summary>The projections a LoRA phase can adapt, named as in GPT-2 code.</summary>
public enum LoraTarget
{
    /// <summary>attention.query_key_value</summary>
    Qkv,
    /// <summary>attention.dense</summary>
    Proj,
    /// <summary>mlp.dense_h_to_4h</summary>
    Fc1,
    /// <summary>mlp.dense_4h_to_h</summary>
    Fc2,
}

public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private const string AName = "lora_A", BName = "lora_B";
    [ComponentName(Name = "weight")] private Parameter _weight;   // [out, in]
    [ComponentName(Name = "bias")] private Parameter? _bias;      // [out]
    [ComponentName(Name = AName)] private Parameter? _loraA;      // [r, in]
    [ComponentName(Name = BName)] private Parameter? _loraB;      // [out, r]

    /// <summary>Initialised as torch.nn.Linear (Kaiming-uniform weight, uniform bias in +-1/sqrt(in)), drawing the same
    /// random numbers in the same order, so models are the same whichever class holds the projection.</summary>
    public LoraLinear(long inFeatures, long outFeatures, bool hasBias, Device? device = null) : base(nameof(LoraLinear))
    {
        _weight = new Parameter(torch.empty([outFeatures, inFeatures], device: device));
        nn.init.kaiming_uniform_(_weight, Math.Sqrt(5));
        if (hasBias)
        {
            _bias = new Parameter(torch.empty([outFeatures], device: device));
            double bound = 1 / Math.Sqrt(inFeatures);
            nn.init.uniform_(_bias, -bound, bound);
        }
        RegisterComponents();
    }

    public Parameter Weight => _weight;
    public Parameter? Bias => _bias;
    public long InFeatures => _weight.shape[1];
    public long OutFeatures => _weight.shape[0];

    /// <summary>Whether a state-dict name is an adapter matrix ("...lora_A" or "...lora_B").</summary>
    public static bool IsAdapterName(string name) => name.EndsWith("." + AName, StringComparison.Ordinal) || name.EndsWith("." + BName,
        StringComparison.Ordinal);

    /// <summary>Whether an adapter is attached (and not yet merged).</summary>
    public bool HasAdapter => _loraA is not null;
    public int Rank => _loraA is null ? 0 : (int)_loraA.shape[0];
    /// <summary>alpha / r, the scale of the adapter's update (LoRA paper §4.1).</summary>
    public double Scaling { get; private set; }
    public Parameter? LoraA => _loraA;
    public Parameter? LoraB => _loraB;

    /// <summary>The dtype the product is computed in (the weight itself stays fp32, the master copy). A frozen weight's
    /// compute copy is made once and kept while it stays frozen.</summary>
    public ScalarType ComputeType
    {
        get => _computeType;
        set { _computeType = value; DropComputeCopy(); }
    }

    private ScalarType _computeType = ScalarType.Float32;
    private Tensor? _frozenWeight, _frozenBias;

    private void DropComputeCopy()
    {
        _frozenWeight?.Dispose();
        _frozenBias?.Dispose();
        _frozenWeight = _frozenBias = null;
    }

    /// <summary>The weight and bias in the compute dtype: casts that autograd sees for a trained weight, a kept copy
    /// for a frozen one (it never changes while frozen; a weight that trains drops its copy).</summary>
    private (Tensor Weight, Tensor? Bias, bool Owned) ComputeParameters()
    {
        if (_computeType == _weight.dtype) return (_weight, _bias, false);
        if (_weight.requires_grad || _bias?.requires_grad == true)
        {
            DropComputeCopy();
            return (_weight.to(_computeType), _bias?.to(_computeType), true);
        }
        if (_frozenWeight is null)
            using (torch.no_grad())
            {
                _frozenWeight = _weight.to(_computeType).DetachFromDisposeScope();
                _frozenBias = _bias?.to(_computeType).DetachFromDisposeScope();
            }
        return (_frozenWeight, _frozenBias, false);
    }

    /// <summary>Attaches an adapter of rank <paramref name="rank"/>: A Kaiming-uniform as nn.Linear's weight (and litgpt's
    /// lora_A), B zero.</summary>
    public void Attach(int rank, double alpha)
    {
        if (HasAdapter) throw new InvalidOperationException("this projection already has a LoRA adapter");
        var device = _weight.device;
        var a = torch.empty([rank, InFeatures], device: device);
        if (device.type != DeviceType.META) nn.init.kaiming_uniform_(a, Math.Sqrt(5));
        _loraA = new Parameter(a.DetachFromDisposeScope(), requires_grad: true);
        _loraB = new Parameter(torch.zeros([OutFeatures, rank], device: device).DetachFromDisposeScope(), requires_grad: true);
        Scaling = alpha / rank;
        register_parameter(AName, _loraA);
        register_parameter(BName, _loraB);
    }

    /// <summary>W += (alpha / r) B A under no_grad, then the adapter is removed (from the state dict too).</summary>
    public void Merge()
    {
        if (_loraA is null || _loraB is null) return;
        using (torch.no_grad())
        using (var ba = _loraB.matmul(_loraA))                                             // [out, in]
        using (Scalar scaling = Scaling)
            _weight.add_(ba, alpha: scaling);
        DropComputeCopy();
        ConditionallyRegisterParameter(AName, (Parameter?)null);
        ConditionallyRegisterParameter(BName, (Parameter?)null);
        _loraA.Dispose();
        _loraB.Dispose();
        _loraA = _loraB = null;
        Scaling = 0;
    }

    /// <param name="x">[..., in] in any float dtype; the result is [..., out] in <see cref="ComputeType"/></param>
    public override Tensor forward(Tensor x)
    {
        var (w, b, owned) = ComputeParameters();
        using var xc = x.dtype == _computeType ? x.alias() : x.to(_computeType);
        Tensor y;
        try { y = FewRows(xc) ? FewRowsLinear(xc, w, b) : nn.functional.linear(xc, w, b); }   // [..., out]
        finally { if (owned) { w.Dispose(); b?.Dispose(); } }
        if (_loraA is null) return y;
        using var a = _loraA.to(_computeType);
        using var bm = _loraB!.to(_computeType);
        using var down = xc.matmul(a.t());                                                     // [..., r]
        using var up = down.matmul(bm.t());                                                    // [..., out]
        using Scalar scaling = Scaling;
        using var scaled = up.mul(scaling);
        using (y) return y.add(scaled, Scalars.One);
    }

    /// <summary>Decoding's case: at most 32 rows and no gradient. libtorch's CPU linear, x W^T, takes a few rows at
    /// about half the rate of W x^T: 9.7 against 5.7 ms for 8 rows of the 65,536-id head, the same for one row
    /// (Strata.Bench decode-profile --rows 8). Both are the same sums of products.</summary>
    private static bool FewRows(Tensor x) =>
        x.device_type == DeviceType.CPU && !torch.is_grad_enabled() && x.numel() <= 32 * x.shape[^1];

    /// <summary>(W x^T)^T + b, as a transposed view (no copy): [..., out].</summary>
    private static Tensor FewRowsLinear(Tensor x, Tensor w, Tensor? b)
    {
        using var rows = x.reshape(-1, x.shape[^1]);                                            // [k, in]
        using var product = w.matmul(rows.t());                                                 // [out, k]
        using var y = b is null ? product.t() : product.t().add(b, Scalars.One);                // [k, out]
        return y.view([.. x.shape[..^1], w.shape[0]]);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            DropComputeCopy();
            _weight.Dispose();
            _bias?.Dispose();
            _loraA?.Dispose();
            _loraB?.Dispose();
        }
        base.Dispose(disposing);
    }
}
