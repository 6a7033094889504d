"""siefm: Self-Improving Embodied Foundation Models (Ghasemipour et al., NeurIPS 2025).

Stage 1 (`siefm.sft`) fine-tunes a model with behavioral cloning plus a steps-to-go head; Stage 2
(`siefm.improve`) practises in simulation, rewarded by the frozen Stage 1 model's own steps-to-go estimate.
"""

import os

# Torch's OpenMP threads sleep while they wait for work instead of spinning, so that two jobs on a small
# machine (or a job beside its own worker processes) do not slow each other down many-fold; measured in
# docs/performance.md (benchmarks/threads.py). Set before torch is first imported; a value the user set
# is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from siefm import domains as domains  # registers every domain's env with gymnasium on `import siefm`

__version__ = "0.1.0"
