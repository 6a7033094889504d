"""Stage 2, Self-Improvement: the paper's Algorithm 1 as one loop (docs/method.md, "Stage 2: Algorithm 1").

Each iteration empties the buffer, lets the fleet practise with the current policy until the buffer holds
N x B samples of complete episodes (rewards and termination from the frozen reward model), takes N
REINFORCE steps on minibatches of B drawn without replacement, and discards the buffer. Practice episodes
stream to `RUN/practice/iteration-KKKK` as the fleet hands them over; that dataset is finished, then the
whole training state (policy, optimizer, counters, RNGs) is saved, after every iteration. So
`resume_improve` can continue a run killed at any moment from its last completed iteration: it deletes
what the unfinished iteration streamed and plays that iteration again, so every episode is on disk once.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from siefm.checkpoint import CheckpointError, fit_to_env, load_checkpoint, replace_dir, save_checkpoint
from siefm.config import ImproveConfig, from_dict, to_dict
from siefm.domains import get_domain
from siefm.domains.base import ActionBounds
from siefm.improve.fleet import Fleet, camera_size, make_fleet, practice_env
from siefm.improve.practice_data import PracticeStream, discard_unfinished, iteration_dir
from siefm.improve.ray_fleet import RayFleet
from siefm.improve.reinforce import reinforce_loss
from siefm.improve.reward import RewardModel
from siefm.improve.rollout import PracticeBatch, bound_tensors, collect_practice
from siefm.logging import MetricLogger, read_metrics
from siefm.models.efm import EFMBase

log = logging.getLogger("siefm")

STATE_DIR = "state"  # the latest completed iteration, for --resume
POLICY_DIR = "checkpoints/policy"  # the improved policy, written at the end


def improve(sft_run: Path, out: Path, config: ImproveConfig, policy: Path | None = None) -> Path:
    """Runs Stage 2 from the checkpoints of a Stage 1 run; returns the improved policy checkpoint.

    The policy starts from `policy` when given (e.g. an improved policy practising a new object), else from
    the Stage 1 run's policy; rewards always come from the Stage 1 run's frozen reward model.
    """
    out = Path(out)
    if (out / "config.json").exists():
        raise FileExistsError(
            f"{out} already holds a Stage 2 run; continue it with --resume {out} or pick a new --out."
        )
    sft_run = Path(sft_run).resolve()
    policy = None if policy is None else Path(policy).resolve()
    # Everything is checked before anything is written, so a failed start leaves --out reusable.
    config, inputs = _load_inputs(sft_run, config, policy)
    out.mkdir(parents=True, exist_ok=True)
    run_config = {
        "command": "improve",
        "sft_run": str(sft_run),
        "policy": None if policy is None else str(policy),
        "improve": to_dict(config),
    }
    (out / "config.json").write_text(json.dumps(run_config, indent=2))
    return _run(out, config, *inputs)


Inputs = tuple[EFMBase, dict[str, Any], RewardModel, dict[str, Any]]


def resume_improve(run_dir: Path) -> Path:
    """Continues the Stage 2 run in `run_dir` from its last completed iteration."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} is not a Stage 2 run directory (no config.json); nothing to resume."
        )
    saved = json.loads((run_dir / "config.json").read_text())
    if not isinstance(saved, dict) or saved.get("command") != "improve":
        raise ValueError(
            f"{run_dir} is not a Stage 2 run directory (its config.json is not from `siefm improve`)."
        )
    policy = saved.get("policy")
    config, inputs = _load_inputs(
        Path(saved["sft_run"]), from_dict(ImproveConfig, saved["improve"]), policy and Path(policy)
    )
    return _run(run_dir, config, *inputs)


def _load_inputs(
    sft_run: Path, config: ImproveConfig, policy: Path | None = None
) -> tuple[ImproveConfig, Inputs]:
    """The config resolved for the domain, and the run's inputs: the policy to train (Stage 1's unless
    `policy` is given), its metadata, the frozen reward model with its threshold s, and the practice env."""
    checkpoints = {name: sft_run / "checkpoints" / name for name in ("policy", "reward")}
    if policy is not None:
        checkpoints["policy"] = policy
    for path in checkpoints.values():
        if not path.is_dir():
            raise CheckpointError(
                f"{path} is not a checkpoint directory: pass the --out directory of a finished `siefm sft` "
                "run as --sft-run (and RUN/checkpoints/policy as --policy)."
            )
    policy_efm, policy_meta = load_checkpoint(checkpoints["policy"])
    reward_efm, reward_meta = load_checkpoint(checkpoints["reward"])
    if "env" not in policy_meta:
        raise CheckpointError(f"{checkpoints['policy']} does not record the env it was trained on.")
    config = config.resolve(policy_meta["env"]["id"])
    env = practice_env(policy_meta["env"], config)
    for name, model in (("policy", policy_efm), ("reward", reward_efm)):
        fit_to_env(checkpoints[name], model, env)
    threshold = config.success_threshold
    if threshold is None:
        if "success_threshold" not in reward_meta:
            raise CheckpointError(
                f"{checkpoints['reward']} has no calibrated success threshold (Stage 1 did not finish): "
                "rerun `siefm sft` or pass --improve.success-threshold."
            )
        threshold = reward_meta["success_threshold"]
    return config, (policy_efm, policy_meta, RewardModel(reward_efm, threshold), env)


def _run(
    out: Path,
    config: ImproveConfig,
    policy: EFMBase,
    policy_meta: dict[str, Any],
    reward_model: RewardModel,
    env: dict[str, Any],
) -> Path:
    threshold = reward_model.success_threshold
    max_episode_steps = config.max_episode_steps or get_domain(env["id"]).episode_limit(env["config"])
    ray = config.fleet == "ray"
    bounds = get_domain(env["id"]).action_bounds(env["config"])
    camera = camera_size(policy, reward_model.model)
    fleet: Fleet | RayFleet = (
        RayFleet(env, config, policy, reward_model) if ray else make_fleet(env, config, camera)
    )
    optimizer = torch.optim.AdamW(  # foreach: as in Stage 1 (siefm.sft.stage1_optimizer)
        policy.policy_parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True
    )
    generator = torch.Generator().manual_seed(config.seed)
    counters = {"iterations": 0, "env_steps": 0, "updates": 0, "episodes": 0, "wall_seconds": 0.0}
    if (out / STATE_DIR).is_dir() or (out / (STATE_DIR + ".old")).is_dir():
        counters = {**counters, **_load_state(out, policy, optimizer, generator, fleet)}
        log.info(
            "resuming Stage 2 at iteration %d (%d env steps)", counters["iterations"], counters["env_steps"]
        )
    _drop_metrics_after(out / "metrics.jsonl", counters["iterations"])
    discard_unfinished(out / "practice", counters["iterations"])

    def improved_metadata() -> dict[str, Any]:
        """The Stage 1 policy's metadata plus what Stage 2 has done so far."""
        progress = {
            k: counters[k] for k in ("iterations", "env_steps", "updates", "episodes", "wall_seconds")
        }
        return {
            **policy_meta,
            "stage": "improve",
            "success_threshold": threshold,
            "improve": progress,
            "practice_env": env,
        }

    logger = MetricLogger(out)
    log.info("Stage 2: success threshold s = %.3f steps, %d iterations", threshold, config.num_iterations)
    bar = tqdm(
        range(counters["iterations"], config.num_iterations),
        desc="Stage 2",
        unit="it",
        initial=counters["iterations"],
        total=config.num_iterations,
    )
    budget = config.max_practice_episodes
    try:
        for iteration in bar:
            if budget is not None and counters["episodes"] >= budget:
                log.info("Stage 2: the practice budget of %d episodes is spent", budget)
                break
            start = time.perf_counter()
            practice = _practice_stream(out, config, iteration, threshold, env)
            sink = None if practice is None else practice.write  # gets episodes as the fleet hands them over
            if isinstance(fleet, RayFleet):  # versioned by the number of updates the weights have had
                batch = fleet.collect(policy, counters["updates"], iteration, max_episode_steps, sink)
            else:
                batch = collect_practice(
                    fleet,
                    policy,
                    reward_model,
                    num_samples=config.samples_per_iteration,
                    max_episode_steps=max_episode_steps,
                    gamma=config.gamma,
                    end_on_true_success=config.end_on_true_success,
                    success_bonus=config.success_bonus,
                    generator=generator,
                    episode_sink=sink,
                    action_bounds=bounds,
                )
            collect_seconds = time.perf_counter() - start
            loss = reinforce_updates(policy, optimizer, batch, config, generator, bounds)
            seconds = time.perf_counter() - start
            counters["iterations"] = iteration + 1
            counters["env_steps"] += batch.num_samples
            counters["updates"] += config.num_updates
            counters["episodes"] += len(batch.episode_length)
            counters["wall_seconds"] += seconds
            metrics = {
                "improve/iteration": iteration + 1,
                "improve/env_steps": counters["env_steps"],
                "improve/updates": counters["updates"],
                "improve/episodes": counters["episodes"],
                "improve/loss": loss,
                **batch.metrics(),
                "time/env_steps_per_second": batch.num_samples / collect_seconds,
                **fleet.metrics(),
                "time/iteration_seconds": seconds,
            }
            logger.log(metrics, step=counters["env_steps"])
            bar.set_postfix(
                success=f"{metrics['rollout/true_success']:.2f}",
                length=f"{metrics['rollout/episode_length']:.1f}",
            )
            if practice is not None:
                practice.finish()  # before the state: a crash in between only replays a finished iteration
            _save_state(out, policy, optimizer, generator, fleet, counters, improved_metadata())
    finally:  # on a crash too, so Ray actors and renderers do not outlive the run
        bar.close()
        logger.close()
        fleet.close()
    return save_checkpoint(out / POLICY_DIR, policy, improved_metadata())


def _practice_stream(
    out: Path, config: ImproveConfig, iteration: int, threshold: float, env: dict[str, Any]
) -> PracticeStream | None:
    """Where an iteration's practice episodes stream to; None with --improve.no-save-practice."""
    if not config.save_practice:
        return None
    return PracticeStream(iteration_dir(out / "practice", iteration), iteration, threshold, env)


def reinforce_updates(
    policy: EFMBase,
    optimizer: torch.optim.Optimizer,
    batch: PracticeBatch,
    config: ImproveConfig,
    generator: torch.Generator,
    action_bounds: ActionBounds | None = None,
) -> float:
    """N updates on minibatches of B samples drawn without replacement; returns the mean loss. With the
    domain's `action_bounds`, actions are scored as the simulator executed them (clipped)."""
    order = torch.randperm(batch.num_samples, generator=generator)[: config.samples_per_iteration]
    bounds = bound_tensors(action_bounds)
    losses = []
    for index in order.view(config.num_updates, config.minibatch_size):
        inputs, goal, action = batch.policy_inputs(index), batch.goal[index], batch.action[index]
        log_probs = policy.log_prob(inputs, goal, action, bounds)
        loss = reinforce_loss(
            log_probs, batch.returns[index], torch.ones_like(log_probs, dtype=torch.bool), config.reward_scale
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def _save_state(
    out: Path,
    policy: EFMBase,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    fleet: Fleet,
    counters: dict[str, Any],
    metadata: dict[str, Any],
) -> None:
    tmp = out / (STATE_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_checkpoint(tmp / "policy", policy, metadata)
    optim_state = optimizer.state_dict()
    tensors = {
        f"{pid}.{name}": value for pid, state in optim_state["state"].items() for name, value in state.items()
    }
    tensors["rng.torch"] = generator.get_state()
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(tmp / "optimizer.safetensors"))
    trainer = {**counters, "param_groups": optim_state["param_groups"], "fleet_rng": fleet.rng_state()}
    (tmp / "trainer.json").write_text(json.dumps(trainer))
    replace_dir(tmp, out / STATE_DIR)


def _load_state(
    out: Path, policy: EFMBase, optimizer: torch.optim.Optimizer, generator: torch.Generator, fleet: Fleet
) -> dict[str, Any]:
    state_dir = out / STATE_DIR
    if not state_dir.is_dir():  # killed between the two renames of `replace_dir`: the previous copy is whole
        state_dir = out / (STATE_DIR + ".old")
    saved_policy, _ = load_checkpoint(state_dir / "policy")
    policy.load_state_dict(saved_policy.state_dict())
    try:
        tensors = load_file(str(state_dir / "optimizer.safetensors"))
        trainer = json.loads((state_dir / "trainer.json").read_text())
    except (SafetensorError, OSError, json.JSONDecodeError) as error:
        raise CheckpointError(
            f"the saved Stage 2 state in {state_dir} is unreadable ({error}); "
            "start a new run instead of resuming."
        ) from error
    generator.set_state(tensors.pop("rng.torch"))
    optim_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        optim_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": optim_state, "param_groups": trainer.pop("param_groups")})
    fleet.set_rng_state(trainer.pop("fleet_rng"))
    return trainer


def _drop_metrics_after(path: Path, iteration: int) -> None:
    """Forgets metric records of iterations that did not complete before an interruption."""
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("improve/iteration", 0) <= iteration]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))
