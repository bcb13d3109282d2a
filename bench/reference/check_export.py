"""transformers loads the folder `strata export --format hf` wrote and reproduces Strata's fp32 logits.

Usage: check_export.py EXPORT_DIR OUT_JSON [--device cuda|cpu]
EXPORT_DIR holds config.json, model.safetensors and strata_logits.safetensors (input_ids, logits) from
`Strata.Bench gpu`. Writes {"max_abs_diff", "detail"}.
"""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    export_dir, out = sys.argv[1], sys.argv[2]
    device = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--device" else ("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    expected = load_file(f"{export_dir}/strata_logits.safetensors")
    model = AutoModelForCausalLM.from_pretrained(export_dir, torch_dtype=torch.float32).to(device).eval()
    with torch.no_grad():
        logits = model(expected["input_ids"].to(device)).logits.float().cpu()
    diff = (logits - expected["logits"]).abs().max().item()
    detail = f"{type(model).__name__}, transformers on {device}, logits {list(logits.shape)}"
    print(f"export check: max |difference| {diff:.2e} ({detail})")
    with open(out, "w") as f:
        json.dump({"max_abs_diff": diff, "detail": detail}, f)


if __name__ == "__main__":
    main()
