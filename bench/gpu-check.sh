#!/usr/bin/env bash
# The one-shot GPU check: everything a GPU machine must show, in one run (docs/BENCHMARKS.md, "GPU").
#
#   bench/gpu-check.sh publish
#       here, with .NET: Strata.Bench self-contained for linux-x64 without a libtorch package (it runs against the
#       libtorch of the machine's PyTorch), packed as .device/gpu-check.tar.xz (git-ignored; carry .device).
#   bench/gpu-check.sh run [--device cuda|cpu] [--tiny] [--out DIR]
#       there: on the paper's 9-block model (d 1024, 32 heads, V 65,536, T 1024, B 16; --tiny: a small one) Strata's
#       training step, monolithic and stage 3 (6 frozen + 3 trained), fp32 / tf32 / bf16; the PyTorch reference of the
#       same model and step (bench/reference/gpt_step.py, eager and torch.compile); memory over 200 steps; transformers
#       loading Strata's export with equal logits; one table, printed and written to DIR/gpu-check.json.
#       Uses the packed app (a GPU machine has no .NET), or for --device cpu the built bench (dotnet). PyTorch and
#       transformers parts run where Python has them and are reported as not run otherwise (the CPU test suite runs
#       `run --device cpu --tiny`, so the script cannot rot).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
package=.device/gpu-check.tar.xz

publish() {
    local out; out=$(mktemp -d)
    dotnet publish bench/Strata.Bench/Strata.Bench.csproj -c Release -r linux-x64 --self-contained \
        -p:StrataLibTorch=none -p:InvariantGlobalization=true -o "$out" -nologo -v q
    rm -f "$out"/*.pdb "$out"/*.xml
    mkdir -p .device
    tar -C "$out" -cJf "$package.tmp" .
    mv "$package.tmp" "$package"
    rm -rf "$out"
    echo "$package: $(du -h "$package" | cut -f1)"
}

run() {
    local device=cuda tiny="" out="${OUT:-$root/gpu-check-out}"
    while [ $# -gt 0 ]; do
        case "$1" in
            --device) device="$2"; shift 2 ;;
            --tiny) tiny=--tiny; shift ;;
            --out) out="$2"; shift 2 ;;
            *) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
        esac
    done
    mkdir -p "$out"
    out="$(cd "$out" && pwd)"
    # the packed app on a GPU machine (no .NET there); the built bench (with the CPU libtorch) for a CPU run here
    local app=() built=bench/Strata.Bench/bin/Release/net10.0/Strata.Bench.dll
    if [ "$device" = cpu ] && [ -f "$built" ] && command -v dotnet >/dev/null; then
        app=(dotnet "$built")
    elif [ -f "$package" ]; then
        local dir; dir=$(mktemp -d)
        tar -C "$dir" -xJf "$package"
        app=("$dir/Strata.Bench")
    else
        echo "gpu-check: neither $package (bench/gpu-check.sh publish) nor a built bench (dotnet build) is here" >&2; exit 1
    fi
    local python=""
    if command -v python3 >/dev/null && python3 -c 'import torch' 2>/dev/null; then python=python3; fi
    local gpu=""
    if [ "$device" = cuda ]; then
        [ -n "$python" ] || { echo "gpu-check: --device cuda needs PyTorch's CUDA libtorch (python3 -c 'import torch' failed)" >&2; exit 1; }
        export LD_LIBRARY_PATH="$($python -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || true)
        echo "== $gpu; torch $($python -c 'import torch;print(torch.__version__, torch.version.cuda)')"
        # NCCL for the world-size-1 all-reduce: the nvidia-nccl wheel beside PyTorch, else what the loader finds
        local nccl; nccl=$($python -c 'import nvidia.nccl,os;print(os.path.dirname(nvidia.nccl.__file__)+"/lib")' 2>/dev/null || true)
        if [ -n "$nccl" ] && [ -f "$nccl/libnccl.so.2" ]; then export STRATA_NCCL="$nccl/libnccl.so.2"; fi
        echo "== NCCL: ${STRATA_NCCL:-libnccl.so.2 on the library path}"
    fi
    echo "== Strata: training step, memory, export"
    STRATA_HOME="$root" "${app[@]}" gpu --device "$device" $tiny --out "$out"
    if [ -n "$python" ]; then
        echo "== PyTorch reference (eager, torch.compile for bf16)"
        $python bench/reference/gpt_step.py --device "$device" $tiny --json "$out/pytorch.json" || echo "gpu-check: the PyTorch reference failed" >&2
        if $python -c 'import transformers' 2>/dev/null; then
            echo "== transformers loads the export"
            $python bench/reference/check_export.py "$out/export" "$out/export.json" --device "$device" || echo "gpu-check: the export check failed" >&2
        fi
    fi
    echo "== report"
    "${app[@]}" gpu-report "$out" --gpu "$gpu"
}

case "${1:-}" in
    publish) publish ;;
    run) shift; run "$@" ;;
    *) echo "usage: bench/gpu-check.sh publish | run [--device cuda|cpu] [--tiny] [--out DIR]" >&2; exit 2 ;;
esac
