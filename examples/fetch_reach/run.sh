#!/usr/bin/env bash
# FetchReach (gymnasium-robotics) end to end, as a user brings an env siefm did not write:
# a noisy, detouring scripted demonstrator records a LeRobot dataset, then Stage 1, Stage 2 and evaluation beside
# the straight-line controller. Needs `pip install 'siefm[robotics]'`. Usage: examples/fetch_reach/run.sh OUT
set -euo pipefail
out=${1:-runs/fetch-reach}
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"  # so that controllers:detour imports
env=gymnasium_robotics:FetchReach-v4                    # module:EnvId: importing the module registers it
siefm collect --env $env --policy controllers:noisy_detour --num-episodes 2000 --out "$out/data"
siefm sft --dataset "$out/data" --out "$out/sft"
siefm improve --sft-run "$out/sft" --out "$out/rl" --improve.vector-env sync
for stage in sft rl; do
  siefm eval --checkpoint "$out/$stage/checkpoints/policy" --out "$out/eval-$stage" \
    --eval.episodes 500 --eval.reference controllers:straight
done
