"""Does the instruction select the blocks it names? A check of an object-selecting EFM's attention.

For block2block instructions ("push the red moon to the blue cube") the env knows which block is to move
and which is the reference. For each, the check reports the share of instructions where the query that
picks it most often has its largest weight on it (1.0 = always found). A healthy tabletop model finds both
(the 80% subset's runs: 1.00 and 1.00); a run whose queries locked onto the wrong blocks shows it here long
before its success rate does (docs/tabletop.md, "Which block the instruction names").
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.models.efm import EFM, EFMBase

log = logging.getLogger("siefm")

GROUNDED = 0.9  # share of instructions below which a selector is taken to miss a named block


def is_grounded(grounding: dict[str, float]) -> bool:
    """Whether a `selector_grounding` result finds both the moved and the reference block."""
    return min(grounding["moved"], grounding["reference"]) >= GROUNDED


@torch.no_grad()
def selector_grounding(
    model: EFM, env_config: TabletopConfig | None = None, num_tasks: int = 300, seed: int = 0
) -> dict[str, float]:
    """{"moved": share, "reference": share, "max_weight": mean top weight} over `num_tasks` seeded boards."""
    if model.selector is None:
        raise ValueError("selector_grounding needs a state EFM with an object selector ('objects' states).")
    env = TabletopEnv(env_config or TabletopConfig())
    instructions, moved, reference = [], [], []
    for k in range(num_tasks):
        env.reset(seed=seed + k, options={"family": "block2block"})
        instructions.append(env.task.instruction)
        moved.append(env.task.block)
        reference.append(env.task.other)
    env.close()
    ids = model.goal_input(instructions)
    weights = model.selector.weights(model.text_encoder(ids), ids)  # (N, Q, objects)
    picks = weights.argmax(-1).numpy()  # (N, Q)
    return {
        "moved": _best_query_share(picks, np.asarray(moved)),
        "reference": _best_query_share(picks, np.asarray(reference)),
        "max_weight": float(weights.max(-1).values.mean()),
    }


def _best_query_share(picks: np.ndarray, target: np.ndarray) -> float:
    return float((picks == target[:, None]).mean(0).max())


def instruction_grounding(policy: EFMBase, env_config: TabletopConfig) -> dict[str, float] | None:
    """After Stage 1: how often the policy's object selector picks the blocks a block2block instruction
    names, with a warning when it misses: a Stage 1 run can lock onto the wrong blocks and then push them
    for good (docs/tabletop.md). None for models without a selector or boards of one block."""
    if env_config.block_set == "1" or policy.selector is None:
        return None
    grounding = selector_grounding(policy, TabletopConfig(block_set=env_config.block_set))
    log.info(
        "instruction grounding: a query picks the block to move in %.0f%% and the reference block in %.0f%% "
        "of 300 block2block instructions",
        100 * grounding["moved"],
        100 * grounding["reference"],
    )
    if not is_grounded(grounding):
        log.warning(
            "Stage 1 has not learnt which blocks the instructions name; its policy will often push the "
            "wrong block. Train longer, or retrain with another --sft.seed."
        )
    return grounding
