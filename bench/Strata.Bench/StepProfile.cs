using System.Diagnostics;
using Strata.Modeling;
using Strata.Optim;
using Strata.Substrates;
using Strata.Training;
using Strata.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Strata.Bench;

/// <summary>
/// Where the time of the train benchmark's step goes (4 blocks, T 256, B 8, V 65,536, 16-bit substrate, d from --d,
/// fp32 or bf16 from --precision), each part beside what it would take at the rate of torch.mm on square 2048 matrices
/// of the step's compute dtype (read between the parts in every round; each figure is the median of its rounds):
/// the step's parts (the blocks forward, the head with its cross-entropy and gradients, the backward through the
/// blocks, clipping and AdamW, the collection that ends Trainer.Step); one block's operations, forward and forward +
/// backward, on the model's own modules; and the head's operations over the step's chunks of rows (its three products
/// and its passes over the logits).
/// FLOPs as in the train benchmark: matmuls, attention counted as non-causal (PaLM appendix B).
/// </summary>
public static class StepProfile
{
    private const int L = 4, T = 256, B = 8, V = 65536;

    public static void Run(string[] args)
    {
        int d = args.SkipWhile(a => a != "--d").Skip(1).Select(int.Parse).FirstOrDefault(256);
        int rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(5);
        var precision = args.SkipWhile(a => a != "--precision").Skip(1).FirstOrDefault() == "bf16" ? Precision.Bf16 : Precision.Fp32;
        var cfg = new ModelConfig { DModel = d, NHead = d / 64, ContextLength = T, VocabSize = V };
        torch.manual_seed(0);
        using var model = new LanguageModel(cfg, new SubstrateSpec(), L);
        model.SetPrecision(precision);
        using var opt = new AdamW(model.named_parameters().Select(x => (x.name, x.parameter)), 0.9, 0.95, 1e-8, 0.1);
        using var batch = torch.randint(0, V, [B, T + 1]);
        Console.WriteLine($"d = {d}, {L} blocks, T {T}, B {B}, V 65,536, {precision.ToString().ToLowerInvariant()}, " +
            $"threads {torch.get_num_threads()} (GOMP_SPINCOUNT {Strata.Util.OpenMpWaiting.SpinCount() ?? "unset"}), median of {rounds} rounds");
        var mm = new List<double>();
        var step = new Table("step part");
        var block = new Table("one block's operation (x its count)");
        var head = new Table("head operation, over the step's chunks of rows");
        var choices = new Table("the way taken");
        Trainer.Step(model, opt, 1e-4, 1.0, [batch]);                                       // warm-up
        for (int round = 0; round <= rounds; round++)
        {
            if (round == 1) { mm.Clear(); step.Clear(); block.Clear(); head.Clear(); choices.Clear(); }   // round 0 warms every path
            mm.Add(TrainingThroughput.MatmulReading(CPU, model.ComputeType).Sustained);
            StepParts(model, opt, batch, step);
            BlockParts(model, block);
            HeadParts(d, model.ComputeType, head);
            Choices(model, choices);
        }
        double rate = Readings.Median(mm);
        Console.WriteLine($"torch.mm (square 2048, {model.ComputeType}, sustained): {rate:F1} GFLOP/s");
        foreach (var table in new[] { step, block, head }) table.Print(rate);
        choices.PrintPairs();
        // the products and attention of the whole step: the head's once, a block's L times
        double ms = head.Products.Ms + L * block.Products.Ms, flops = head.Products.Flops + L * block.Products.Flops;
        Console.WriteLine();
        Console.WriteLine($"the step's matrix products and attention alone, each at its rate above: {ms:F0} ms for {flops / 1e9:F1} GFLOP, " +
            $"{100 * flops / rate / 1e6 / ms:F0}% of torch.mm's rate (the MFU of this step if everything else took no time)");
    }

    /// <summary>Named timings (ms) with their FLOPs, one reading per round.</summary>
    private sealed class Table(string heading)
    {
        private readonly List<(string Name, double Flops, List<double> Ms)> _rows = [];

        public void Add(string name, double flops, double ms)
        {
            int i = _rows.FindIndex(r => r.Name == name);
            if (i < 0) _rows.Add((name, flops, [ms]));
            else _rows[i].Ms.Add(ms);
        }

        public void Clear() => _rows.Clear();

        /// <summary>The rows that count FLOPs (matrix products, attention): their median times and FLOPs, summed.</summary>
        public (double Ms, double Flops) Products =>
            (_rows.Where(r => r.Flops > 0).Sum(r => Readings.Median(r.Ms)), _rows.Where(r => r.Flops > 0).Sum(r => r.Flops));

        /// <summary>Rows 0 and 1, 2 and 3, ...: each way taken beside the one it replaced, with their ratio.</summary>
        public void PrintPairs()
        {
            Console.WriteLine();
            Console.WriteLine($"| {heading} | ms | the other way, in the same rounds | ms | other / taken |");
            Console.WriteLine("|---|---|---|---|---|");
            for (int i = 0; i + 1 < _rows.Count; i += 2)
            {
                double taken = Readings.Median(_rows[i].Ms), other = Readings.Median(_rows[i + 1].Ms);
                Console.WriteLine($"| {_rows[i].Name} | {taken:F1} | {_rows[i + 1].Name} | {other:F1} | {other / taken:F2}x |");
            }
        }

        public void Print(double rate)
        {
            Console.WriteLine();
            Console.WriteLine($"| {heading} | ms | GFLOP | ms at torch.mm's rate | share of torch.mm's rate |");
            Console.WriteLine("|---|---|---|---|---|");
            double total = 0, totalFlops = 0;
            foreach (var (name, flops, ms) in _rows)
            {
                double m = Readings.Median(ms);
                total += m;
                totalFlops += flops;
                Console.WriteLine(flops > 0
                    ? $"| {name} | {m:F1} | {flops / 1e9:F2} | {flops / rate / 1e6:F1} | {100 * flops / rate / 1e6 / m:F0}% |" : $"| {name} | {m:F1} | | | |");
            }
            Console.WriteLine($"| all | {total:F1} | {totalFlops / 1e9:F2} | {totalFlops / rate / 1e6:F1} | {100 * totalFlops / rate / 1e6 / total:F0}% |");
        }
    }

    private static double Ms(Action action, int repeats = 1)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < repeats; i++) action();
        return sw.Elapsed.TotalMilliseconds / repeats;
    }

    /// <summary>Trainer.Step's work, part by part.</summary>
    private static void StepParts(LanguageModel model, AdamW opt, Tensor batch, Table table)
    {
        int d = model.Config.DModel;
        double blockForward = B * T * L * (2.0 * 12 * d * d + 4.0 * T * d), headFlops = 6.0 * B * T * d * V;
        using (torch.NewDisposeScope())
        {
            Tensor hidden = null!, loss = null!;
            table.Add("blocks, forward", blockForward, Ms(() => hidden = model.Hidden(batch[.., ..^1])));
            table.Add("head and cross-entropy (forward, computing their gradients)", headFlops, Ms(() =>
                loss = ChunkedCrossEntropy.Loss(hidden.reshape(-1, d).to(model.ComputeType), model.Head.Weight, model.Head.Bias, batch[.., 1..].reshape(-1))));
            table.Add("blocks, backward", 2 * blockForward, Ms(() => loss.backward()));
            table.Add("clipping, AdamW, zeroing the gradients", 0, Ms(() =>
            {
                var (_, scale) = opt.ClipScale(1.0);
                opt.Step(1e-4, scale);
                opt.ZeroGrad();
            }));
        }
        table.Add("collecting what TorchSharp frees in finalizers", 0, Ms(() => NativeAllocator.FreeFinalizedObjects(CPU)));
    }

    /// <summary>Block 0's operations one at a time, forward and forward + backward (against a random upstream gradient),
    /// each on an input of the dtype it gets in the model: the fp32 residual stream for the LayerNorms, the projections
    /// fed by them and the residual adds, the compute dtype for everything after a projection.</summary>
    private static void BlockParts(LanguageModel model, Table table)
    {
        var blk = model.Blocks[0];
        var c = model.Config;
        int d = c.DModel, nh = c.NHead, hs = d / nh;
        var (f32, cd) = (ScalarType.Float32, model.ComputeType);
        using var scope = torch.NewDisposeScope();
        var attention = AttentionContext.Create(0, T, null, c, cd, CPU);    // as the model's forward makes it; freed with the scope
        var (cos, sin) = (attention.Cos, attention.Sin);
        var lnWeight = torch.ones(d, requires_grad: true);
        var lnBias = torch.zeros(d, requires_grad: true);
        var keys = torch.randn([B, nh, T, hs], dtype: cd, requires_grad: true);
        var values = torch.randn([B, nh, T, hs], dtype: cd, requires_grad: true);
        var branch = torch.randn([B, T, d], dtype: cd, requires_grad: true);
        var leaves = blk.parameters().Cast<Tensor>().Concat([lnWeight, lnBias, keys, values, branch]).ToList();
        Func<Tensor, Tensor[]> One(Func<Tensor, Tensor> f) => x => [f(x)];
        // as in the model: in bf16 on the CPU one pass makes q, k and v and rotates q and k (RotaryHeads); otherwise q
        // (and k) are strided views of the projection's output, rotated by libtorch's operations
        bool oneRotaryPass = RotaryHeads.Applies(torch.empty([B, T, 3 * d], dtype: cd), cos, sin, hs);
        var ops = new (string Name, int Count, long[] Input, ScalarType Dtype, Func<Tensor, Tensor[]> F, double Flops)[]
        {
            ("LayerNorm", 2, [B, T, d], f32, One(x => nn.functional.layer_norm(x, [d], lnWeight, lnBias, c.LayerNormEps)), 0),
            ("query-key-value projection", 1, [B, T, d], f32, One(x => blk.Attention.QueryKeyValue.call(x)), 2.0 * B * T * d * 3 * d),
            oneRotaryPass
                ? ("heads of q, k, v, rotary on q and k (RotaryHeads)", 1, [B, T, 3 * d], cd, x =>
                {
                    var (q, k, v) = RotaryHeads.Split(x, hs, cos, sin);
                    return [q, k, v];
                }, 0)
                : ("rotary (queries, keys)", 2, [B, T, 3 * d], cd, One(x => Rotary.Apply(x.view(B, T, nh, 3 * hs).narrow(-1, 0, hs).transpose(1, 2), cos,
                    sin)), 0),
            (attention.ByProducts ? "attention, causal, by products" : "scaled_dot_product_attention, causal", 1, [B, nh, T, hs], cd, One(q =>
                Attend(q, keys, values, attention.ByProducts ? Attention.ByProducts : Attention.Fused)), 4.0 * B * T * T * d),
            ("heads together (transpose, contiguous)", 1, [B, nh, T, hs], cd, One(x => x.transpose(1, 2).contiguous().view(B, T, d)), 0),
            ("attention output projection", 1, [B, T, d], cd, One(x => blk.Attention.Dense.call(x)), 2.0 * B * T * d * d),
            ("MLP up", 1, [B, T, d], f32, One(x => blk.Mlp.Up.call(x)), 2.0 * B * T * d * 4 * d),
            ("GELU (erf)", 1, [B, T, 4 * d], cd, One(x => nn.functional.gelu(x)), 0),
            ("MLP down", 1, [B, T, 4 * d], cd, One(x => blk.Mlp.Down.call(x)), 2.0 * B * T * d * 4 * d),
            ("residual add", 2, [B, T, d], f32, One(x => x.add(branch, Scalars.One)), 0),
        };
        const int repeats = 5;
        foreach (var (name, count, shape, dtype, f, flops) in ops)
        {
            using var x = torch.randn(shape, dtype: dtype, requires_grad: true);
            var g = f(x).Select(y => torch.randn_like(y)).ToList();
            double forward = Ms(() => { foreach (var y in f(x)) y.Dispose(); }, repeats);
            double both = Ms(() =>
            {
                var ys = f(x);
                torch.autograd.backward(ys, g);
                foreach (var y in ys) y.Dispose();
                foreach (var leaf in leaves.Append(x)) leaf.grad = null;                   // each backward starts afresh, as in a step
            }, repeats);
            table.Add($"{name} x{count}, forward", count * flops, count * forward);
            table.Add($"{name} x{count}, backward", count * 2 * flops, count * (both - forward));
        }
    }

    /// <summary>The ways to attend causally: libtorch's fused kernel, products around Strata's kernel (the model's way in
    /// bf16 on the CPU up to AttentionContext.ProductsUpTo positions), and products around libtorch's masked_fill and
    /// softmax (the way it replaced).</summary>
    private enum Attention { Fused, ByProducts, ByProductsWithLibtorch }

    private static Tensor Attend(Tensor q, Tensor k, Tensor v, Attention way)
    {
        if (way == Attention.Fused) return nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, true);
        if (way == Attention.ByProducts) return CausalAttentionByProducts.Attend(q, k, v);
        long t = q.shape[2];
        using var scope = torch.NewDisposeScope();
        using Scalar scale = 1.0 / Math.Sqrt(q.shape[3]);
        var scores = torch.matmul(q.mul(scale), k.transpose(-2, -1));
        scores.masked_fill_(torch.ones([t, t], dtype: ScalarType.Bool).triu(1), Scalars.NegativeInfinity);
        return torch.matmul(scores.softmax(-1), v).MoveToOuterDisposeScope();
    }

    /// <summary>The step's choices for speed, each beside the way it replaced, in the same round: in bf16 causal attention
    /// (products around Strata's kernel against the fused kernel and against products around libtorch's masked_fill and
    /// softmax, forward and backward, x blocks), and the heads of the projection's output made and rotated in one pass
    /// (RotaryHeads) against views rotated by libtorch's operations, each followed by that attention; over the head's
    /// chunks of rows, in bf16 its
    /// pass over the logits (RowSoftmax against libtorch's to fp32, max, subtract and exp, sum and back), and dH (G W
    /// against (W^T G^T)^T, which libtorch's bf16 product once ran faster).</summary>
    private static void Choices(LanguageModel model, Table table)
    {
        int d = model.Config.DModel;
        var dtype = model.ComputeType;
        long n = B * T, rows = ChunkedCrossEntropy.Rows(V, dtype);
        using var scope = torch.NewDisposeScope();
        using Scalar initScale = 0.02;
        var h = torch.randn(rows, d).to(dtype);
        var w = torch.randn(V, d).mul_(initScale).to(dtype);
        var logits = torch.mm(h, w.t());
        // the pass as the head runs it, between the logits product and dH's (libtorch's threads spin after a product)
        void Pass(bool kernel)
        {
            using var chunk = torch.NewDisposeScope();
            var x = torch.mm(h, w.t());
            if (kernel) RowSoftmax.ExpInPlace(x);
            else x = ChunkedCrossEntropy.LibtorchExponentials(x).Exponentials;
            torch.mm(x, w);
        }
        void Dh(bool plain)
        {
            using var chunk = torch.NewDisposeScope();
            if (plain) torch.mm(logits, w);
            else torch.mm(w.t(), logits.t()).t().contiguous();
        }
        var pairs = new List<(string Taken, string Other, Action<bool> Run, bool TakenArgument)>
        {
            ("dH = G W (x chunks)", "dH = (W^T G^T)^T (x chunks)", Dh, true),
        };
        if (dtype != ScalarType.Float32) pairs.Insert(0, ("logits, pass over them with RowSoftmax, dH (x chunks)",
            "logits, pass over them with libtorch's operations, dH (x chunks)", Pass, true));
        int chunks = (int)(n / rows);
        foreach (var (taken, other, run, takenArgument) in pairs)
        {
            table.Add(taken, 0, Ms(() => run(takenArgument)) * chunks);
            table.Add(other, 0, Ms(() => run(!takenArgument)) * chunks);
        }
        using var context = AttentionContext.Create(0, T, null, model.Config, dtype, CPU);
        if (!context.ByProducts) return;
        int nh = model.Config.NHead, hs = d / nh;
        var (q, k, v) = (Leaf(), Leaf(), Leaf());
        var upstream = torch.randn([B, nh, T, hs], dtype: dtype);
        Tensor Leaf() => torch.randn([B, nh, T, hs], dtype: dtype, requires_grad: true);
        double Both(Attention way) => Ms(() =>
        {
            using (var y = Attend(q, k, v, way)) y.backward([upstream]);
            q.grad = k.grad = v.grad = null;
        }) * L;
        table.Add("causal attention by products, forward and backward (x blocks)", 0, Both(Attention.ByProducts));
        table.Add("scaled_dot_product_attention, causal, forward and backward (x blocks)", 0, Both(Attention.Fused));
        table.Add("causal attention by products, timed again (x blocks)", 0, Both(Attention.ByProducts));
        table.Add("products around libtorch's masked_fill and softmax (x blocks)", 0, Both(Attention.ByProductsWithLibtorch));
        // the projection's output to attention's output and back: heads and rotary in one pass, or views and libtorch's rotary
        var qkv = torch.randn([B, T, 3 * d], dtype: dtype, requires_grad: true);
        double Heads(bool onePass) => Ms(() =>
        {
            using var chunk = torch.NewDisposeScope();
            var (q, k, v) = onePass ? RotaryHeads.Split(qkv, hs, context.Cos, context.Sin) : Views();
            Attend(q, k, v, Attention.ByProducts).backward([upstream]);
            qkv.grad = null;
        }) * L;
        (Tensor, Tensor, Tensor) Views()
        {
            var parts = qkv.view(B, T, nh, 3 * hs).chunk(3, dim: -1).Select(p => p.transpose(1, 2)).ToArray();
            return (Rotary.Apply(parts[0], context.Cos, context.Sin), Rotary.Apply(parts[1], context.Cos, context.Sin), parts[2]);
        }
        table.Add("heads and rotary in one pass (RotaryHeads), then attention, forward and backward (x blocks)", 0, Heads(true));
        table.Add("views and libtorch's rotary, then attention, forward and backward (x blocks)", 0, Heads(false));
    }

    /// <summary>The head's work over the step's B*T rows in <paramref name="dtype"/>, as ChunkedCrossEntropy does it (no
    /// bias), one operation at a time.</summary>
    private static void HeadParts(int d, ScalarType dtype, Table table)
    {
        long n = B * T, rows = ChunkedCrossEntropy.Rows(V, dtype);
        bool f32 = dtype == ScalarType.Float32;
        using var scope = torch.NewDisposeScope();
        using Scalar initScale = 0.02, rowCount = n, minusShare = -1.0 / n;
        var hidden = torch.randn(n, d).to(dtype);
        var w = torch.randn(V, d).mul_(initScale);
        var targets = torch.randint(0, V, [n]);
        var dHidden = torch.empty_like(hidden);
        Tensor? dWeight = null;
        var ms = new Dictionary<string, double>();
        var flops = new Dictionary<string, double>();
        var sw = Stopwatch.StartNew();
        void Lap(string name, double f = 0)
        {
            ms[name] = ms.GetValueOrDefault(name) + sw.Elapsed.TotalMilliseconds;
            flops[name] = flops.GetValueOrDefault(name) + f;
            sw.Restart();
        }
        var wc = w.to(dtype); Lap("the weight in the compute dtype");
        for (long start = 0; start < n; start += rows)
        {
            using var chunk = torch.NewDisposeScope();
            var h = hidden.narrow(0, start, rows);
            var t = targets.narrow(0, start, rows);
            sw.Restart();
            var logits = torch.mm(h, wc.t()); Lap("logits = h W^T", 2.0 * rows * d * V);
            var xt = logits.gather(1, t.unsqueeze(1)).to(ScalarType.Float32); Lap("the targets' logits (gather)");
            Tensor max, sum;
            if (f32)
            {
                max = logits.amax([1], keepdim: true); Lap("max over each row");
                logits.sub_(max).exp_(); Lap("subtract the max, exp (in place)");
                sum = logits.sum(1, keepdim: true); Lap("sum over each row");
            }
            else { (max, sum) = RowSoftmax.ExpInPlace(logits); Lap("each row's max, exp(x - max) in place, sum (RowSoftmax)"); }
            var loss = max.add(sum.log(), Scalars.One).sub_(xt).sum(); Lap("the loss");
            var scale = sum.reciprocal().div_(rowCount);
            dHidden.narrow(0, start, rows).copy_(torch.mm(logits, wc).mul_(scale).add_(wc.index_select(0, t), alpha: minusShare));
            Lap("dH = G W (with the row scale and the one-hot part)", 2.0 * rows * d * V);
            ChunkedCrossEntropy.AddTransposedProduct(ref dWeight, logits, h.mul(scale.to(dtype)));
            dWeight.index_add_(0, t, h.to(ScalarType.Float32), minusShare); Lap("dW += G^T h (with the one-hot part)", 2.0 * rows * d * V);
        }
        foreach (var (name, m) in ms) table.Add(name, flops[name], m);
    }
}
