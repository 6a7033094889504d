#!/usr/bin/env bash
# FetchPush (gymnasium-robotics) with the paper's data-scaling protocol, as a user brings an env siefm did
# not write: a noisy scripted demonstrator records 4N episodes; Stage 1 on a subset of N and on all 4N;
# Stage 2 from the N-subset with at most N practice episodes; all three evaluated beside the clean
# controller on the same seeded episodes. Needs `pip install 'siefm[robotics]'`.
# Usage: examples/fetch_push/run.sh OUT [N]
set -euo pipefail
out=${1:-runs/fetch-push}
n=${2:-1000}
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"  # so that controllers:slow_push imports
env=gymnasium_robotics:FetchPush-v4
siefm collect --env $env --policy controllers:slow_push --num-episodes $((4 * n)) --out "$out/data"
siefm sft --dataset "$out/data" --out "$out/sft-n" --sft.data-fraction 0.25
siefm sft --dataset "$out/data" --out "$out/sft-4n"
siefm improve --sft-run "$out/sft-n" --out "$out/rl" --improve.vector-env sync \
  --improve.num-iterations 1000 --improve.max-practice-episodes "$n"
for run in sft-n sft-4n rl; do
  siefm eval --checkpoint "$out/$run/checkpoints/policy" --out "$out/eval-$run" \
    --eval.episodes 500 --eval.reference controllers:push
done
