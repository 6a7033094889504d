"""Does sampled practice stay near the demonstrations? Aloha Stage 1 policies played with mean and with
sampled actions (docs/aloha.md, "What goes wrong").

    python experiments/aloha_practice_stability.py --runs runs/aloha/sft runs/other/sft --episodes 20

Plays the same seeded episodes with each Stage 1 run's policy, deterministic (the mode) and
sampled (as Stage 2 practice samples), and prints success, how far the episodes got (gym-aloha's stages
0-4: nothing, the right gripper touches the cube, lifts it, the left touches it too, transferred), faults,
the joints' mean speed (the demonstrations': about 0.15 rad/s) and how often the run's own detector
(d <= s) fires where the simulator says the task is not done, the reward model's false alarms that Stage 2
would be paid for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.domains.aloha.env import JOINTS, AlohaConfig, AlohaEnv

VELOCITIES = slice(JOINTS, 2 * JOINTS)


@dataclass(frozen=True)
class Args:
    runs: tuple[Path, ...]
    """Stage 1 runs (`siefm sft --out`) on Aloha transfer-cube datasets."""
    episodes: int = 20
    seed: int = 1000
    """Episode k is reset with seed + k (the same for every run and mode)."""


def rollouts(run: Path, episodes: int, seed: int, sampled: bool) -> str:
    policy, meta = load_checkpoint(run / "checkpoints" / "policy")
    reward, reward_meta = load_checkpoint(run / "checkpoints" / "reward")
    threshold = reward_meta["success_threshold"]
    goal = policy.goal_input([meta["env"]["config"]["task"]])
    env = AlohaEnv(AlohaConfig())
    wins, faults, false_alarms, speeds, lengths, stages = 0, 0, 0, [], [], []
    for episode in range(episodes):
        generator = torch.Generator().manual_seed(episode)
        obs, info = env.reset(seed=seed + episode)
        alarmed, stage = False, 0
        for step in range(1, env.config.max_steps + 1):  # noqa: B007 (its last value is the length)
            state = {"state": torch.from_numpy(obs["state"]).float()[None]}
            with torch.no_grad():
                action = policy.act(state, goal, deterministic=not sampled, generator=generator)[0][0]
            obs, _, terminated, _, info = env.step(action.double().numpy())
            with torch.no_grad():
                d = reward.steps_to_go({"state": torch.from_numpy(obs["state"]).float()[None]}, goal)
            alarmed |= bool(d.item() <= threshold) and not info["is_success"]
            speeds.append(np.abs(obs["state"][VELOCITIES]).mean())
            stage = max(stage, info["stage"])
            if terminated:
                break
        wins += bool(info["is_success"])
        faults += "fault" in info
        false_alarms += alarmed
        lengths.append(step)
        stages.append(stage)
    return (
        f"success {wins}/{episodes}, furthest stage {np.bincount(stages, minlength=5).tolist()}, "
        f"faults {faults}, detector fired before success in {false_alarms}, "
        f"mean length {np.mean(lengths):.0f}, "
        f"joint speed (rad/s) median {np.median(speeds):.2f}, max {np.max(speeds):.1f}"
    )


def main(args: Args) -> None:
    torch.set_num_threads(1)
    for run in args.runs:
        for sampled, how in ((False, "mean actions"), (True, "sampled")):
            print(f"{run}, {how}: {rollouts(run, args.episodes, args.seed, sampled)}", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
