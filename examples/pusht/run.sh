#!/usr/bin/env bash
# PushT (gym-pusht, LeRobot's sim env) from pixels and the agent's position, as a user brings an env siefm
# did not write: near_goal.py wraps PushT so a simple script can demonstrate it (the T starts a short push
# from its target; success at 80% coverage), the scripted demonstrator records a LeRobot dataset with the
# camera as MP4 video, then Stage 1 and Stage 2 on pixels and evaluation beside the noiseless script.
# PushT's goal is fixed, so --task names it. Needs `pip install 'siefm[pusht,pretrained]'`.
# Usage: examples/pusht/run.sh OUT [ATTEMPTS]
set -euo pipefail
out=${1:-runs/pusht}
attempts=${2:-400}
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"  # so that near_goal and controllers import
env=near_goal:NearGoalPushT-v0
siefm collect --env $env --policy controllers:noisy_push --num-episodes "$attempts" \
  --task "push the T onto its target" --out "$out/data"
siefm sft --dataset "$out/data" --out "$out/sft" --sft.model.observation pixels --sft.steps 1500
siefm improve --sft-run "$out/sft" --out "$out/rl" --improve.num-iterations 8 --improve.vector-env sync
for stage in sft rl; do
  siefm eval --checkpoint "$out/$stage/checkpoints/policy" --out "$out/eval-$stage" \
    --eval.episodes 100 --eval.reference controllers:push
done
