// The whole model: substrate (embed_in) -> blocks (layers) -> final LayerNorm -> untied head (embed_out).
// Legend: B batch, T time, C = d_model, V vocab. State-dict names follow transformers' GPTNeoXForCausalLM without its
// "gpt_neox." prefix (Interop/GptNeoXNames maps the rest). Depth grows with AddBlock.
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
    [ComponentName(Name = "embed_out")] private readonly Linear _head;
    private readonly Device _device;

    /// <summary>A model with <paramref name="depth"/> GPT-2-initialised blocks on the substrate <paramref name="spec"/> describes.</summary>
    public LanguageModel(ModelConfig config, SubstrateSpec spec, int depth, Device? device = null)
        : this(config, Substrate.Create(spec, config.VocabSize, config.DModel, device), depth, device) { }

    /// <summary>A model with <paramref name="depth"/> GPT-2-initialised blocks on the given substrate.</summary>
    public LanguageModel(ModelConfig config, Substrate substrate, int depth, Device? device = null) : base(nameof(LanguageModel))
    {
        Config = config.Validate();
        _device = device ?? CPU;
        _substrate = substrate;
        _layers = new ModuleList<DecoderBlock>();
        _finalNorm = LayerNorm(config.DModel, config.LayerNormEps, device: _device);
        _head = Linear(config.DModel, config.VocabSize, hasBias: config.HeadBias, device: _device);
        RegisterComponents();
        if (_device.type != DeviceType.META)
        {
            using var _ = torch.no_grad();
            nn.init.normal_(_head.weight!, 0, 0.02);
            if (_head.bias is not null) nn.init.zeros_(_head.bias);
        }
        for (int i = 0; i < depth; i++) AddBlock(depth);
    }

    public ModelConfig Config { get; }
    public Substrate Substrate => _substrate;
    public IReadOnlyList<DecoderBlock> Blocks => _layers.ToList();
    public LayerNorm FinalNorm => _finalNorm;
    public Linear Head => _head;
    public Device Device => _device;
    public int Depth => _layers.Count;

    /// <summary>Stacks a new block on top. ModuleList.Add after registration does not register the block, so it is
    /// registered by name here; parameters() and state_dict() grow by one block.</summary>
    /// <param name="initDepth">depth used for the 1/sqrt(2*depth) residual-projection scale</param>
    public DecoderBlock AddBlock(int initDepth)
    {
        var block = new DecoderBlock(Config, _device);
        if (_device.type != DeviceType.META) block.InitializeGpt2(initDepth);
        _layers.Add(block);
        _layers.register_module($"{_layers.Count - 1}", block);
        return block;
    }

    public override Tensor forward(Tensor idx) => Forward(idx);

    public Tensor Logits(Tensor idx, IDisposable? cache = null, Tensor? positions = null) => Forward(idx, (KvCache?)cache, positions);
    public IDisposable NewCache(long batch) => new KvCache(batch, Config.NHead, Config.ContextLength, Config.HeadSize, _device, ScalarType.Float32);
    public void ResetCache(IDisposable cache) => ((KvCache)cache).Reset();
    public long CacheLength(IDisposable cache) => ((KvCache)cache).Length;
    public bool Training => training;
    public void SetTraining(bool training) => train(training);

    /// <summary>Logits [B, T, V] for token ids <paramref name="idx"/> [B, T] (or [B, P, V] at <paramref name="positions"/>
    /// [B, P] only). With a cache, idx are the positions after those already cached. The frozen substrate and the
    /// leading frozen blocks run under no_grad, so they keep no activations for backward.</summary>
    public Tensor Forward(Tensor idx, KvCache? cache = null, Tensor? positions = null)
    {
        var (B, T) = (idx.shape[0], idx.shape[1]);
        long past = cache?.Length ?? 0;
        if (past + T > Config.ContextLength)
            throw new ArgumentException($"sequence of {past + T} positions exceeds the context length {Config.ContextLength}");
        var (cos, sin) = Rotary.Tables(past, T, Config.HeadSize, Config.RopeTheta, _device);
        using var cosD = cos;
        using var sinD = sin;

        int frozen = _substrate.IsFrozen ? FrozenPrefix() : -1;
        Tensor x;
        using (frozen >= 0 ? torch.no_grad() : null)
        {
            x = _substrate.call(idx);                                                   // [B, T, C]
            for (int i = 0; i < frozen; i++) x = Step(x, i);
        }
        for (int i = Math.Max(frozen, 0); i < _layers.Count; i++) x = Step(x, i);
        cache?.Advance(T);
        if (positions is not null)
        {
            using var all = x;
            using var index = positions.unsqueeze(-1).expand(positions.shape[0], positions.shape[1], all.shape[2]);
            x = all.gather(1, index);                                                   // [B, P, C]
        }
        using (x)
        using (var h = _finalNorm.call(x))
            return _head.call(h);                                                     // [B, T or P, V]

        Tensor Step(Tensor input, int i)
        {
            using (input) return _layers[i].Forward(input, cosD, sinD, cache, i);
        }
    }

    /// <summary>Mean next-token cross-entropy (nats) of <paramref name="idx"/> [B, T] against <paramref name="targets"/> [B, T].</summary>
    public Tensor Loss(Tensor idx, Tensor targets)
    {
        using var logits = Forward(idx);                                               // [B, T, V]
        using var flat = logits.view(-1, Config.VocabSize);                             // [B*T, V]
        using var t = targets.reshape(-1);
        return nn.functional.cross_entropy(flat, t);
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
