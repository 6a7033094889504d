"""Hindsight block2block labels for the steps-to-go objective (the paper allows hindsight relabelling;
docs/method.md, "Stage 1: supervised fine-tuning").

Every tabletop demonstration, whatever its instruction, also shows block2block events: two blocks that
start apart and come into contact, as the target of a block2block demonstration does or by accident on
the way to another goal. Each such event is a goal the episode did reach, at a known frame t', so the
frames up to it can be labelled for "push the <a> to the <b>" with steps-to-go t' - t. On the 10% subset of
the det16 dataset this finds about 0.9 events per episode, several times the frames the block2block
demonstrations themselves hold. Choices:
- an event is the first frame at which the two centres are under the block2block success distance (5 cm),
  for pairs at least the sampler's 6 cm apart at the first frame (a task the env could have drawn);
- the criterion is symmetric, so each event labels both orders ("<a> to <b>" and "<b> to <a>"), with a verb
  and a preposition drawn as the env draws them;
- frames after t' get no hindsight label (the blocks may part again), and an episode's own block2block
  pair is skipped (its demonstration already labels it);
- the labels train the steps-to-go head only: the behaviour on the way was not aimed at the relabelled
  goal, so it is no demonstration of it.
"""

from __future__ import annotations

import numpy as np

from siefm.data.dataset import EpisodeDataset
from siefm.data.relabel import RelabelledGoals
from siefm.domains.tabletop.scene import BLOCK_SETS
from siefm.domains.tabletop.tasks import PREPOSITIONS, VERBS, block_name

CONTACT = 0.05  # block2block's success distance between centres (tasks.Task.is_success)
APART = 0.06  # the block2block sampler's least distance at the start (tasks.sample_task)
STATE_PREFIX, OBJECT_ROW = 4, 4  # pusher x, y, target x, y; then x, y, cos yaw, sin yaw per block


def block2block_hindsight(dataset: EpisodeDataset, block_set: str, seed: int = 0) -> RelabelledGoals:
    """The block2block hindsight labels of every episode of a tabletop `dataset` of `block_set` boards;
    `seed` draws the instructions' verbs and prepositions."""
    blocks = BLOCK_SETS[block_set]
    names = [block_name(i, blocks) for i in range(len(blocks))]
    state = dataset.columns["observation.state"]
    expected = STATE_PREFIX + OBJECT_ROW * len(blocks)
    if state.shape[1] != expected:
        raise ValueError(
            f"the dataset's states have {state.shape[1]} numbers, not the {expected} of the '{block_set}' "
            "board: hindsight labels need tabletop state observations."
        )
    positions = state[:, STATE_PREFIX:].reshape(len(state), len(blocks), OBJECT_ROW)[:, :, :2]
    rng = np.random.default_rng(seed)
    texts: dict[str, int] = {}
    frames, instructions, labels = [], [], []
    pairs = block2block_pairs(names)
    for start, end in dataset.episode_bounds:
        own = pairs.get(dataset.tasks[dataset.columns["task_index"][start]], set())
        p = positions[start:end]
        distance = np.linalg.norm(p[:, :, None] - p[:, None], axis=-1)  # (T, n, n)
        for a in range(len(blocks)):
            for b in range(a + 1, len(blocks)):
                if distance[0, a, b] < APART or {a, b} == own:
                    continue
                contact = np.flatnonzero(distance[:, a, b] < CONTACT)
                if not len(contact):
                    continue
                last = int(contact[0])
                for moved, other in ((a, b), (b, a)):
                    verb = VERBS[rng.integers(len(VERBS))]
                    preposition = PREPOSITIONS[rng.integers(len(PREPOSITIONS))]
                    text = f"{verb} the {names[moved]} {preposition} the {names[other]}"
                    frames.append(start + np.arange(last + 1))
                    instructions.append(np.full(last + 1, texts.setdefault(text, len(texts))))
                    labels.append(np.arange(last, -1, -1))
    if not frames:
        empty = np.zeros(0, dtype=np.int64)
        return RelabelledGoals(empty, empty, empty, ())
    return RelabelledGoals(
        np.concatenate(frames).astype(np.int64),
        np.concatenate(instructions).astype(np.int64),
        np.concatenate(labels).astype(np.int64),
        tuple(texts),
    )


def block2block_pairs(names: list[str]) -> dict[str, set[int]]:
    """Every block2block instruction of a board whose blocks have these names -> the two blocks it names."""
    return {
        f"{verb} the {names[a]} {preposition} the {names[b]}": {a, b}
        for a in range(len(names))
        for b in range(len(names))
        if a != b
        for verb in VERBS
        for preposition in PREPOSITIONS
    }
