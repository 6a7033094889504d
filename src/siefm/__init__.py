"""siefm: Self-Improving Embodied Foundation Models (Ghasemipour et al., NeurIPS 2025).

Stage 1 (`siefm.sft`) fine-tunes a model with behavioral cloning plus a steps-to-go head; Stage 2
(`siefm.improve`) practises in simulation, rewarded by the frozen Stage 1 model's own steps-to-go estimate.
"""

from siefm import domains as domains  # registers every domain's env with gymnasium on `import siefm`

__version__ = "0.1.0"
