"""Does reading the joint velocities make sampled Aloha practice diverge? (docs/aloha.md)

    siefm collect --env aloha --out runs/aloha-d500 --aloha.num-episodes 500
    siefm sft --dataset runs/aloha-d500 --out runs/aloha-sftd --sft.steps 10000 --sft.eval-every 500
    python experiments/aloha_no_velocities.py --dataset runs/aloha-d500 --with-velocities runs/aloha-sftd

Trains a second Stage 1 (the same settings) whose EFM sees the 14 joint velocities replaced by their mean,
in training and in the rollouts, then plays 10 seeded episodes of each policy, with its mean actions and
with sampled ones (the Gaussian at its own scale, as Stage 2 practice samples), and prints success, faults
and the joints' mean speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from siefm.checkpoint import load_checkpoint
from siefm.config import SFTConfig
from siefm.domains.aloha.env import JOINTS, AlohaConfig, AlohaEnv
from siefm.models import efm
from siefm.sft import train_sft

VELOCITIES = slice(JOINTS, 2 * JOINTS)


@dataclass(frozen=True)
class Args:
    dataset: Path
    with_velocities: Path
    """A Stage 1 run on `dataset` at the same settings, reading the velocities."""
    out: Path = Path("runs/aloha-sft-no-velocities")
    episodes: int = 10


def without_velocities() -> None:
    """Makes every EFM read each joint velocity as its training mean (a constant: nothing to learn from)."""
    encode = efm.EFM._encode

    def patched(self: efm.EFM, obs: dict, goal: torch.Tensor) -> list[torch.Tensor]:
        state = obs["state"].clone()
        state[:, VELOCITIES] = self.input_mean[VELOCITIES]
        return encode(self, {**obs, "state": state}, goal)

    efm.EFM._encode = patched


def rollouts(run: Path, episodes: int, temperature: float) -> str:
    policy, meta = load_checkpoint(run / "checkpoints" / "policy")
    goal = policy.goal_input([meta["env"]["config"]["task"]])
    env = AlohaEnv(AlohaConfig())
    wins, faults, speeds = 0, 0, []
    for seed in range(episodes):
        generator = torch.Generator().manual_seed(seed)
        obs, info = env.reset(seed=seed)
        for _ in range(env.config.max_steps):
            with torch.no_grad():
                dist = policy.action_distribution(
                    {"state": torch.from_numpy(obs["state"]).float()[None]}, goal
                )
                noise = (
                    temperature * dist.normal.scale * torch.randn(dist.normal.loc.shape, generator=generator)
                )
                action = ((dist.normal.loc + noise) * dist.action_std + dist.action_mean)[0]
            obs, _, terminated, _, info = env.step(action.double().numpy())
            speeds.append(np.abs(obs["state"][VELOCITIES]).mean())
            if terminated:
                break
        wins += bool(info["is_success"])
        faults += "fault" in info
    return (
        f"success {wins}/{episodes}, faults {faults}, joint speed median {np.median(speeds):.2f} "
        f"max {np.max(speeds):.1f} rad/s"
    )


def main(args: Args) -> None:
    torch.set_num_threads(1)
    for name, run in (("with velocities", args.with_velocities), ("without", args.out)):
        if name == "without":
            without_velocities()
            if not (run / "checkpoints").exists():
                train_sft(args.dataset, run, SFTConfig(steps=10_000, eval_every=500))
        for temperature, how in ((0.0, "mean actions"), (1.0, "sampled")):
            print(f"{name}, {how}: {rollouts(run, args.episodes, temperature)}")


if __name__ == "__main__":
    main(tyro.cli(Args))
