"""PyTorch reference for bench/gpu-check.sh: the same model and training step as Strata's, timed the same way.

The model is Strata's LanguageModel (GPT-NeoX layout, the papers' architecture): a frozen 16-bit binary token code
lifted to d_model (a fixed [V, C] table), blocks of LayerNorm -> fused QKV projection -> rotary embedding over the
whole head ("rotate half") -> causal scaled-dot-product attention -> output projection, then LayerNorm -> Linear(C, 4C)
-> exact GELU -> Linear(4C, C), each with a residual; a final LayerNorm and an untied head without bias. The step is
Strata's: mean next-token cross-entropy, backward, clip the global gradient norm to 1, AdamW (decay on matrices).
Configurations: monolithic (every block trains) and stage 3 of constructive growth (the first 6 blocks frozen), in
fp32, tf32 and bf16 (autocast), eager and torch.compile. Writes {"rows": [{impl, config, precision, tokens_per_s}]}.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.dense = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(4 * d, d)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        hs = C // self.heads
        qkv = self.qkv(self.ln1(x)).view(B, T, self.heads, 3 * hs)
        q, k, v = (t.transpose(1, 2) for t in qkv.chunk(3, dim=-1))

        def rotate(t):
            t1, t2 = t[..., : hs // 2], t[..., hs // 2:]
            return t * cos + torch.cat([-t2, t1], dim=-1) * sin

        y = F.scaled_dot_product_attention(rotate(q), rotate(k), v, is_causal=True)
        x = x + self.dense(y.transpose(1, 2).reshape(B, T, C))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class Model(nn.Module):
    def __init__(self, layers, d, heads, vocab, context):
        super().__init__()
        bits = (torch.arange(vocab)[:, None] >> torch.arange(16)[None, :]) & 1          # [V, 16]
        code = bits.float() * 2 - 1
        self.register_buffer("substrate", code.repeat(1, d // 16))                      # frozen [V, C]
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        hs = d // heads
        inv = 1.0 / (10000 ** (torch.arange(0, hs, 2).float() / hs))
        freqs = torch.outer(torch.arange(context).float(), inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.substrate[idx]
        for block in self.blocks:
            x = block(x, self.cos[:T], self.sin[:T])
        logits = self.head(self.ln(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def run(model, batch, steps, precision, device, frozen):
    for i, block in enumerate(model.blocks):
        for p in block.parameters():
            p.requires_grad_(i >= frozen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=1e-5, betas=(0.9, 0.95), eps=1e-8, fused=device == "cuda")
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(2):                                      # warm-up (and compilation)
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch.shape[0] * (batch.shape[1] - 1) * steps / (time.perf_counter() - start)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--compile", default="bf16", help="precisions also run under torch.compile (comma list, or none)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    layers, d, heads, vocab, context, batch_size, frozen = (9, 64, 4, 65536, 32, 2, 6) if a.tiny else (9, 1024, 32, 65536, 1024, 16, 6)
    steps = a.steps or (2 if a.tiny else 10)
    torch.manual_seed(0)
    model = Model(layers, d, heads, vocab, context).to(a.device)
    batch = torch.randint(0, vocab, (batch_size, context + 1), device=a.device)
    compiled = [] if a.compile == "none" else a.compile.split(",")
    rows = []
    for precision in ["fp32", "tf32", "bf16"]:
        for config, n in [("monolithic", 0), ("stage 3", frozen)]:
            for impl in ["eager"] + (["compile"] if precision in compiled else []):
                m = torch.compile(model) if impl == "compile" else model
                tok_s = run(m, batch, steps, precision, a.device, n)
                rows.append({"impl": impl, "config": config, "precision": precision, "tokens_per_s": tok_s})
                print(f"pytorch {impl:7} {config:10} {precision:4}: {tok_s:10.0f} tokens/s", flush=True)
    info = {"torch": torch.__version__, "device_name": torch.cuda.get_device_name() if a.device == "cuda" else "cpu"}
    with open(a.json, "w") as f:
        json.dump({"rows": rows, **info}, f, indent=1)


if __name__ == "__main__":
    main()
