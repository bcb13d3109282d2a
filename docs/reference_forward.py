"""Reference forward pass of a model exported by `strata export --format hf`, in plain PyTorch.

    python3 docs/reference_forward.py EXPORT_DIR [token ids ...]

Prints the logits' shape and the greedy next token; if transformers is installed, also the largest absolute difference
between these logits and GPTNeoXForCausalLM's for the same directory.
"""
import json
import math
import sys

import torch
from safetensors.torch import load_file


def forward(d, ids):
    cfg = json.load(open(f"{d}/config.json"))
    w = load_file(f"{d}/model.safetensors")
    C, nh, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hs, eps, theta = C // nh, cfg["layer_norm_eps"], cfg.get("rope_theta", 10000.0)
    T = ids.shape[0]
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda x, p: x @ w[p + ".weight"].T + w[p + ".bias"]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.int64).float() / hs))
    ang = torch.outer(torch.arange(T).float(), inv_freq)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    rot = lambda u: u * cos + torch.cat([-u[..., hs // 2:], u[..., : hs // 2]], -1) * sin
    mask = torch.full((T, T), float("-inf")).triu(1)
    h = w["gpt_neox.embed_in.weight"][ids]                                   # [T, C]
    for i in range(L):
        p = f"gpt_neox.layers.{i}."
        qkv = lin(ln(h, p + "input_layernorm"), p + "attention.query_key_value").view(T, nh, 3 * hs)
        q, k, v = (t.transpose(0, 1) for t in qkv.split(hs, -1))            # [nh, T, hs]
        att = torch.softmax(rot(q) @ rot(k).transpose(-1, -2) / math.sqrt(hs) + mask, -1) @ v
        h = h + lin(att.transpose(0, 1).reshape(T, C), p + "attention.dense")
        m = torch.nn.functional.gelu(lin(ln(h, p + "post_attention_layernorm"), p + "mlp.dense_h_to_4h"))
        h = h + lin(m, p + "mlp.dense_4h_to_h")
    return ln(h, "gpt_neox.final_layer_norm") @ w["embed_out.weight"].T   # [T, V]


if __name__ == "__main__":
    d = sys.argv[1]
    ids = torch.tensor([int(x) for x in sys.argv[2:]] or [104, 101, 108, 108, 111])
    logits = forward(d, ids)
    print("logits", tuple(logits.shape), "greedy next", int(logits[-1].argmax()))
    try:
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(d).eval()
        with torch.no_grad():
            ref = model(ids[None]).logits[0]
        print("max |reference - transformers| =", float((logits - ref).abs().max()))
    except ImportError:
        pass
