// The whole model: substrate (embed_in) -> blocks (layers) -> final LayerNorm -> untied head (embed_out).
// Legend: B batch, T time, C = d_model, V vocab. State-dict names follow transformers' GPTNeoXForCausalLM without its
// "gpt_neox." prefix (Interop/GptNeoX.ToHf adds it). Depth grows with AddBlock and InsertBlock.
using Strata.Substrates;
using Strata.Util;
using TorchSharp;
using TorchSharp.Utils;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Strata.Modeling;

public sealed class LanguageModel : Module<Tensor, Tensor>, ICausalLM
{
    [ComponentName(Name = "embed_in")] private readonly Substrate _substrate;
    [ComponentName(Name = "layers")] private readonly ModuleList<DecoderBlock> _layers;
    [ComponentName(Name = "final_layer_norm")] private readonly LayerNorm _finalNorm;
    [ComponentName(Name = "embed_out")] private readonly LoraLinear _head;
    private readonly Device _device;

    /// <summary>A model with <paramref name="depth"/> GPT-2-initialised blocks on the substrate <paramref name="spec"/> describes.</summary>
    public LanguageModel(ModelConfig config, SubstrateSpec spec, int depth, Device? device = null)
        : this(config, SubstrateBuilder.Create(spec, config.VocabSize, config.DModel, device), depth, device) { }

    /// <summary>A model with <paramref name="depth"/> GPT-2-initialised blocks on the given substrate.</summary>
    public LanguageModel(ModelConfig config, Substrate substrate, int depth, Device? device = null) : base(nameof(LanguageModel))
    {
        Config = config.Validate();
        _device = device ?? CPU;
        _substrate = substrate;
        _layers = new ModuleList<DecoderBlock>();
        _finalNorm = LayerNorm(config.DModel, config.LayerNormEps, device: _device);
        _head = new LoraLinear(config.DModel, config.VocabSize, hasBias: config.HeadBias, device: _device);
        RegisterComponents();
        if (_device.type != DeviceType.META)
        {
            using var _ = torch.no_grad();
            nn.init.normal_(_head.Weight, 0, 0.02);
            if (_head.Bias is not null) nn.init.zeros_(_head.Bias);
        }
        for (int i = 0; i < depth; i++) AddBlock(depth);
    }

    public ModelConfig Config { get; }
    public Substrate Substrate => _substrate;
    public IReadOnlyList<DecoderBlock> Blocks => _layers.ToList();
    public LayerNorm FinalNorm => _finalNorm;
    public LoraLinear Head => _head;

    /// <summary>The dtype of the matrix products: Float32, or BFloat16 with fp32 weights (master copies), an fp32
    /// residual stream, LayerNorms, softmax statistics and loss in fp32 (<see cref="Modeling.Precision"/>).</summary>
    public ScalarType ComputeType => Precision.ComputeType();
    public Precision Precision { get; private set; } = Precision.Fp32;

    /// <summary>Sets the arithmetic of every projection (the blocks' and the head's) and, on CUDA, the TF32 switch.
    /// Blocks stacked later take it too.</summary>
    public void SetPrecision(Precision precision)
    {
        Precision = precision;
        precision.ApplyMatmulMode(_device);
        foreach (var m in modules().OfType<LoraLinear>()) m.ComputeType = ComputeType;
    }
    public Device Device => _device;
    public int Depth => _layers.Count;

    /// <summary>Stacks a new block on top. ModuleList.Add after registration does not register the block, so it is
    /// registered by name here; parameters() and state_dict() grow by one block.</summary>
    /// <param name="initDepth">depth used for the 1/sqrt(2*depth) residual-projection scale</param>
    public DecoderBlock AddBlock(int initDepth) => InsertBlock(_layers.Count, initDepth);

    /// <summary>Puts a new block at position <paramref name="index"/> (0 = right above the substrate); the blocks from
    /// there up move one place, and their names with them (layers.{i} follows the order of the stack).</summary>
    public DecoderBlock InsertBlock(int index, int initDepth)
    {
        if (index < 0 || index > _layers.Count) throw new ArgumentOutOfRangeException(nameof(index));
        var block = new DecoderBlock(Config, _device);
        if (_device.type != DeviceType.META) block.InitializeGpt2(initDepth);
        foreach (var m in block.modules().OfType<LoraLinear>()) m.ComputeType = ComputeType;
        int n = _layers.Count;
        for (int i = index; i < n; i++) _layers.register_module($"{i}", null!);     // unregistered, then registered again in order
        _layers.Insert(index, block);
        for (int i = index; i <= n; i++) _layers.register_module($"{i}", _layers[i]);
        return block;
    }

    public override Tensor forward(Tensor idx) => Forward(idx);

    public Tensor Logits(Tensor idx, IKvCache? cache = null, Tensor? positions = null, Tensor? padding = null) =>
        Forward(idx, cache is null ? null : cache as KvCache ?? throw new ArgumentException("a KV cache made by another model"), positions, padding);
    public IKvCache NewCache(long batch, long? capacity = null) =>
        new KvCache(batch, Config.NHead, Math.Min(capacity ?? Config.ContextLength, Config.ContextLength), Config.HeadSize, _device, ComputeType);
    public long CacheBytesPerPosition => 2L * Depth * Config.DModel * (ComputeType == ScalarType.Float32 ? 4 : 2);
    public bool Training => training;
    public void SetTraining(bool training) => train(training);

    /// <summary>Logits [B, T, V] for token ids <paramref name="idx"/> [B, T] (or [B, P, V] at <paramref name="positions"/>
    /// [B, P] only), in fp32. With a cache, idx are the positions after those already cached; with
    /// <paramref name="padding"/> [B] (int64), row b's first padding[b] positions are left padding, which no position
    /// attends to and which do not count as positions (rotary numbering starts after them).</summary>
    internal Tensor Forward(Tensor idx, KvCache? cache = null, Tensor? positions = null, Tensor? padding = null)
    {
        using var x = Hidden(idx, cache, padding);
        using var picked = positions is null ? x.alias()
            : x.gather(1, positions.unsqueeze(-1).expand(positions.shape[0], positions.shape[1], x.shape[2]));   // [B, P, C]
        using var logits = _head.call(picked);                                           // [B, T or P, V]
        return logits.to(ScalarType.Float32);
    }

    /// <summary>The final hidden states [B, T, C] (after the final LayerNorm, fp32). The frozen substrate and the
    /// leading frozen blocks run under no_grad, so they keep no activations for backward.</summary>
    internal Tensor Hidden(Tensor idx, KvCache? cache = null, Tensor? padding = null)
    {
        var (B, T) = (idx.shape[0], idx.shape[1]);
        long past = cache?.Length ?? 0;
        if (past + T > Config.ContextLength)
            throw new ArgumentException($"sequence of {past + T} positions exceeds the context length {Config.ContextLength}");
        using var attention = AttentionContext.Create(past, T, padding, Config, ComputeType, _device);

        int frozen = _substrate.IsFrozen ? FrozenPrefix() : -1;
        Tensor x;
        using (frozen >= 0 ? torch.no_grad() : null)
        {
            x = _substrate.call(idx);                                                   // [B, T, C]
            for (int i = 0; i < frozen; i++) x = Step(x, i);
        }
        for (int i = Math.Max(frozen, 0); i < _layers.Count; i++) x = Step(x, i);
        cache?.Advance(T);
        using (x) return _finalNorm.call(x);                                          // [B, T, C]

        Tensor Step(Tensor input, int i)
        {
            using (input) return _layers[i].Forward(input, attention, cache, i);
        }
    }

    /// <summary>Mean next-token cross-entropy (nats) of <paramref name="idx"/> [B, T] against <paramref name="targets"/>
    /// [B, T], with the head and its cross-entropy over chunks of rows (ChunkedCrossEntropy): the [B*T, V] logits are
    /// never held whole.</summary>
    public Tensor Loss(Tensor idx, Tensor targets)
    {
        using var h = Hidden(idx);                                                     // [B, T, C]
        using var flat = h.reshape(-1, Config.DModel);                                  // [B*T, C]
        using var t = targets.reshape(-1);
        using var hc = flat.to(ComputeType);
        return ChunkedCrossEntropy.Loss(hc, _head.Weight, _head.Bias, t);
    }

    /// <summary>Whether any block carries LoRA adapters (their parameters are named "layers.{i}.{projection}.lora_A|lora_B").</summary>
    public bool HasLora => _layers.Any(b => b.HasLora);

    /// <summary>Merges every block's adapters into its weights.</summary>
    public void MergeLora()
    {
        foreach (var block in _layers) block.MergeLora();
    }

    /// <summary>Number of leading blocks none of whose parameters (LoRA adapters included) trains.</summary>
    public int FrozenPrefix()
    {
        int n = 0;
        foreach (var block in _layers)
        {
            if (block.parameters().Any(p => p.requires_grad)) break;
            n++;
        }
        return n;
    }
}
