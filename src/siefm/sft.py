"""Stage 1, supervised fine-tuning: behavioral cloning + steps-to-go on demonstrations.

The method: docs/method.md, "Stage 1: supervised fine-tuning". Both losses are computed on every batch and
summed with equal weight (choice: the paper splits each batch evenly between the objectives; with one model
on one batch that is the same weighting). A model may add a perception loss (the board-reading pixel
model's reader, siefm.models.board_efm). The policy and the reward model are selected separately, each by
its own validation loss, and the success threshold s is then calibrated on the validation episodes with
the selected reward model (docs/method.md, "Reward and success detector" and "What the paper leaves open").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from siefm.checkpoint import env_spec, load_checkpoint, save_checkpoint
from siefm.config import ModelConfig, SFTConfig, to_dict
from siefm.data.cameras import check_camera
from siefm.data.dataset import DatasetError, EpisodeDataset, read_dataset
from siefm.data.labels import with_stage1_columns
from siefm.data.normalize import feature_stats
from siefm.data.pixels import (
    StreamedImages,
    dataset_frame_chunks,
    encoded_dataset_frames,
    frame_pairs,
    frame_reader,
    sample_dataset_frames,
    stack_chunks,
)
from siefm.data.relabel import RelabelledGoals
from siefm.data.sampler import Frames, stage1_split
from siefm.domains import Domain, get_domain
from siefm.improve.reward import calibrate_success_threshold
from siefm.logging import MetricLogger
from siefm.models.bins import UniformBins
from siefm.models.build import build_efm
from siefm.models.efm import EFMBase, EFMOutput, ModelSpec, state_offsets
from siefm.models.pretrained import MAX_TOKENS
from siefm.models.text import WordTokenizer
from siefm.models.vision import EfficientNetLite0

log = logging.getLogger("siefm")

REQUIRED_COLUMNS = ("observation.state", "action", "steps_to_go", "is_terminal", "is_success")


def bc_loss(output: EFMOutput, action: torch.Tensor, has_action: torch.Tensor) -> torch.Tensor:
    """-log p(a_t | o_t, g), averaged over frames that have an action (B,)."""
    nll = -output.actions.log_prob(action)
    mask = has_action.float()
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)


def steps_to_go_loss(logits: torch.Tensor, steps_to_go: torch.Tensor, bins: UniformBins) -> torch.Tensor:
    """-log p(bin(t' - t) | o_t, g): cross-entropy against the label's bin. logits (B, K), labels (B,)."""
    return F.cross_entropy(logits, bins.to_index(steps_to_go))


def d_error(logits: torch.Tensor, steps_to_go: torch.Tensor, bins: UniformBins) -> torch.Tensor:
    """|d(o, g) - (t' - t)| in steps (B,). Labels are capped at the last bin's centre: training puts every
    label from there on in the last bin, whose best prediction is that centre."""
    return (bins.expectation(logits) - capped_labels(steps_to_go, bins)).abs()


NEAR_GOAL_STEPS = 20
"""Frames at most this many steps from the goal are where the detector fires and the last rewards are paid."""


def near_goal_error_sum(errors: torch.Tensor, steps_to_go: torch.Tensor) -> tuple[float, int]:
    """The sum of d's errors over the frames within `NEAR_GOAL_STEPS` of the goal, and how many there are.

    Why a separate figure: with sub-optimal demonstrations (detours the observation does not show) the
    labels far from the goal carry noise no model can remove, which swamps the mean error over all frames.
    """
    near = steps_to_go <= NEAR_GOAL_STEPS
    return errors[near].sum().item(), int(near.sum().item())


def capped_labels(steps_to_go: torch.Tensor, bins: UniformBins) -> torch.Tensor:
    """Steps-to-go labels as float, those past the last bin's centre counted as that centre."""
    return steps_to_go.float().clamp(max=bins.centres()[-1].item())


def constant_d_error(train_labels: torch.Tensor, val_labels: torch.Tensor, bins: UniformBins) -> float:
    """The mean |d - (t' - t)| on validation of the best constant guess, the training labels' median (both
    capped as in `d_error`): what a d that does not look at the observation scores. A reward model worth
    practising with must be well under it."""
    guess = capped_labels(train_labels, bins).median()
    return (capped_labels(val_labels, bins) - guess).abs().mean().item()


def sft_loss(
    model: EFMBase, frames: Frames, with_d_error: bool = False, hindsight: Frames | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The Stage 1 objective: BC + steps-to-go with equal weight; `with_d_error` (validation) also reports
    d's error, which is not trained. `hindsight` frames (relabelled goals) join the steps-to-go term only,
    each weighted as a demonstration frame and encoded as one (`encoded`). A model's perception loss (the
    board reader's: estimated against recorded block poses) is added with weight 1: it alone trains the
    reader (and a trainable vision encoder), so its weight trades off against no other loss."""
    obs = model.encoded(frames.observation())
    output = model(obs, frames.goal_input())
    bc = bc_loss(output, frames.action, frames.has_action)
    bins = model.steps_to_go_bins
    logits, labels = output.steps_to_go_logits, frames.steps_to_go
    if hindsight is not None:
        extra = model.steps_to_go_logits(model.encoded(hindsight.observation()), hindsight.goal_input())
        logits, labels = torch.cat([logits, extra]), torch.cat([labels, hindsight.steps_to_go])
    steps = steps_to_go_loss(logits, labels, bins)
    metrics = {"bc_loss": bc.item(), "steps_to_go_loss": steps.item()}
    total = bc + steps
    perception = model.perception_loss(obs)
    if perception is not None:
        total = total + perception[0]
        metrics.update(perception[1])
    if with_d_error:
        errors = d_error(output.steps_to_go_logits, frames.steps_to_go, bins)
        metrics["d_error"] = errors.mean().item()
        metrics["near_goal_error_sum"], metrics["near_goal_frames"] = near_goal_error_sum(
            errors, frames.steps_to_go
        )
    return total, metrics


class Plateau:
    """Stage 1's stopping rule: learning has stopped once, over the last `patience` validations, no tracked
    figure's best value has improved by `min_improvement` of itself (docs/method.md, "Stage 1's length").

    Judged on the best values so far (what the kept checkpoints score), so a noisy validation neither
    stops a run nor keeps it going. `patience` 0 never stops."""

    def __init__(self, patience: int, min_improvement: float):
        self.patience, self.min_improvement = patience, min_improvement
        self.history: list[dict[str, float]] = []  # the best values after each validation

    def reached(self, best: dict[str, float]) -> bool:
        """Records the best values after a validation; True once learning has stopped."""
        self.history.append(dict(best))
        if self.patience == 0 or len(self.history) <= self.patience:
            return False
        before = self.history[-1 - self.patience]
        return all(before[k] - v < self.min_improvement * abs(before[k]) for k, v in best.items())


def stage1_optimizer(model: EFMBase, config: SFTConfig) -> torch.optim.AdamW:
    """AdamW over every parameter: the perception layers at `perception_lr`, the rest at `lr`."""
    perception = list(model.perception_parameters())
    seen = {id(p) for p in perception}
    groups = [{"params": [p for p in model.parameters() if id(p) not in seen]}]
    if perception:
        groups.append({"params": perception, "lr": config.perception_lr})
    # foreach: one multi-tensor update instead of a loop over tensors (torch picks it on GPUs only); the
    # same weights bit for bit on CPU, and a PointMass Stage 1 1.1-1.2x faster (docs/performance.md).
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def stage1_inputs(
    dataset_dir: Path, config: SFTConfig, env: str | None = None, env_kwargs: dict | None = None
) -> tuple[EpisodeDataset, SFTConfig, Domain]:
    """The dataset, the config resolved for its domain, and the domain; everything is checked here, before
    a run directory is made, so a refused run leaves nothing behind. A dataset that records no env (one
    LeRobot wrote) takes `env` (a domain or gymnasium id) made with `env_kwargs`, and its missing Stage 1
    columns are made from its episodes (siefm.data.labels)."""
    dataset = with_stage1_columns(read_dataset(Path(dataset_dir)))
    recorded = dataset.info.get("siefm", {}).get("env", {}).get("id")
    if env is not None and recorded is not None and get_domain(env).env_id != recorded:
        raise ValueError(f"--env {env}: {dataset_dir} was recorded in {recorded}; leave --env out.")
    if recorded is None and env is not None:
        domain = get_domain(env)
        task = dataset.tasks[0] if len(dataset.tasks) == 1 else None
        described = {"id": domain.env_id, "config": domain.env_config(env_kwargs or {}, task)}
        dataset = dataclasses.replace(dataset, info={**dataset.info, "siefm": {"env": described}})
    env_id = dataset.info.get("siefm", {}).get("env", {}).get("id")
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.columns]
    if missing or env_id is None:
        raise DatasetError(
            f"{dataset_dir} lacks the columns {missing} or records no env in meta/info.json: name the env "
            "its episodes were recorded in with --env ENV_ID (and --env-kwargs), or write it with "
            "`siefm collect`."
        )
    check_fits_env_of(dataset, dataset_dir)
    config = config.resolve(env_id)
    if config.model.hf_path is not None:  # recorded absolute, so later stages find it from anywhere
        model = dataclasses.replace(config.model, hf_path=str(Path(config.model.hf_path).resolve()))
        config = dataclasses.replace(config, model=model)
    domain = get_domain(env_id)
    if config.hindsight != "none" and config.hindsight not in domain.hindsight_kinds:
        offered = ", ".join(domain.hindsight_kinds) or "none"
        raise ValueError(
            f"--sft.hindsight {config.hindsight}: {env_id} offers no such relabelling (it offers: "
            f"{offered}); leave it at 'none'."
        )
    if config.model.observation == "pixels":
        check_camera(dataset)
    if config.model.goal_encoder == "vector" and "goal" not in dataset.columns:
        raise DatasetError(
            f"{dataset_dir} has no 'goal' column for --sft.model.goal-encoder vector; "
            "use 'words' to condition on the episodes' instructions."
        )
    return dataset, config, domain


def check_fits_env_of(dataset: EpisodeDataset, dataset_dir: Path) -> None:
    """Refuses a dataset whose states, goals or actions differ in size from what its env gives and takes
    (a dataset LeRobot wrote, named with the wrong --env, --env-kwargs or features map)."""
    env = dataset.info["siefm"]["env"]
    spec = env_spec(env)
    widths = {name: values.shape[1] if values.ndim == 2 else 1 for name, values in dataset.columns.items()}
    wanted = {"observation.state": spec.state_dim, "goal": spec.goal_dim, "action": spec.action_dim}
    for column, size in wanted.items():
        if size is None or widths.get(column) == size:
            continue
        has = f"has {widths[column]} numbers per frame" if column in widths else "has no such feature"
        mapping = env["config"].get("features_map") or {}
        keys = [key for key, feature in mapping.items() if feature.endswith(column.split(".")[-1])]
        source = f" (from its observation keys {keys})" if keys else ""
        raise DatasetError(
            f"{dataset_dir}: the env {env['id']} gives {column} of {size} numbers{source}, but the dataset's "
            f"{column} {has}. Name the env the episodes were recorded in, made as they were (--env, "
            "--env-kwargs), or map its observation keys to the dataset's features (--features-map at "
            "collection)."
        )


def start_run(out: Path, dataset_dir: Path, config: SFTConfig) -> Path:
    """Makes the run directory `out` with its resolved `config.json`; refuses one that holds a run."""
    out = Path(out)
    if (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a Stage 1 run; pick a new --out (or delete it).")
    out.mkdir(parents=True, exist_ok=True)
    run = {"command": "sft", "dataset": str(Path(dataset_dir).resolve()), "sft": to_dict(config)}
    (out / "config.json").write_text(json.dumps(run, indent=2))
    return out


def train_sft(
    dataset_dir: Path, out: Path, config: SFTConfig, env: str | None = None, env_kwargs: dict | None = None
) -> Path:
    """Trains Stage 1 and writes `out/checkpoints/{policy,reward}`; returns `out`. `env` and `env_kwargs`
    name the env of a dataset that records none (see `stage1_inputs`)."""
    start = time.perf_counter()
    dataset, config, domain = stage1_inputs(dataset_dir, config, env, env_kwargs)
    out = start_run(out, dataset_dir, config)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_ids, val_ids = stage1_split(
        dataset.num_episodes, config.data_fraction, config.val_fraction, config.seed
    )
    train_set, val = dataset.select_episodes(train_ids), dataset.select_episodes(val_ids)
    relabelled = None
    if config.hindsight != "none":  # from the training episodes only: validation stays as recorded
        relabelled = domain.relabel(train_set, dataset.info["siefm"]["env"]["config"], config.hindsight)
    tokenizer = None
    if config.model.goal_encoder == "words":
        texts = [*dataset.tasks, *(relabelled.instructions if relabelled else ())]
        tokenizer = WordTokenizer.from_texts(texts, config.model.max_words)
    model = build_model(config, train_set, tokenizer)
    stream = streams_frames(config, model, dataset.num_frames)
    train, val_frames = model_frames(model, train_set, stream), model_frames(model, val, stream)
    hindsight = None
    if relabelled is not None and len(relabelled) == 0:
        log.warning("hindsight: the training episodes reached no goal to relabel with; nothing relabelled")
    elif relabelled is not None:
        hindsight = hindsight_frames(model, train, relabelled)
    # its own stream, so the demonstration batches are the same as in a run without hindsight
    hindsight_generator = torch.Generator().manual_seed(config.seed + 2)
    optimizer = stage1_optimizer(model, config)
    aux_weight = config.model.arms.instruction_aux_weight
    # its own stream of episodes, so the frame batches are the same as in a run without the objective
    aux_generator = torch.Generator().manual_seed(config.seed + 1)
    metadata = {
        "env": dataset.info["siefm"]["env"],
        "dataset": str(Path(dataset_dir).resolve()),
        "train_episodes": len(train_ids),
        "val_episodes": len(val_ids),
    }
    logger = MetricLogger(out)
    best = {"policy": math.inf, "reward": math.inf}
    plateau = Plateau(config.patience or 0, config.min_improvement)
    last_step = config.steps
    log.info(
        "Stage 1: %d train / %d validation episodes, %d frames", len(train_ids), len(val_ids), len(train)
    )
    if relabelled is not None:
        metadata["hindsight_frames"] = len(relabelled)
        log.info(
            "hindsight: %d relabelled frames, %d instructions", len(relabelled), len(relabelled.instructions)
        )
    batches = train.batches(config.batch_size, generator, workers=FRAME_WORKERS)
    bar = tqdm(range(1, config.steps + 1), desc="Stage 1", unit="step", mininterval=1.0)
    for step in bar:
        extra = None if hindsight is None else hindsight.sample(config.batch_size, hindsight_generator)
        loss, metrics = sft_loss(model, next(batches), hindsight=extra)
        if aux_weight > 0:
            episodes = torch.randint(train_set.num_episodes, (config.batch_size,), generator=aux_generator)
            aux, accuracy = model.instruction_aux_loss(*train.endpoints(episodes))
            loss = loss + aux_weight * aux
            metrics.update(instruction_loss=aux.item(), instruction_accuracy=accuracy.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % config.eval_every == 0 or step == config.steps:
            val_metrics = validation_losses(model.eval(), val_frames, config.batch_size)
            model.train()
            for name, key in (("policy", "bc_loss"), ("reward", config.reward_selection)):
                if val_metrics[key] < best[name]:  # each checkpoint is the best on its own validation metric
                    best[name] = val_metrics[key]
                    save_checkpoint(
                        out / "checkpoints" / name,
                        model,
                        {**metadata, "stage": "sft", "step": step, f"val_{key}": best[name]},
                    )
            record = {
                "sft/step": step,
                **{f"sft/{k}": v for k, v in metrics.items()},
                **{f"sft/val_{k}": v for k, v in val_metrics.items()},
                "time/sft_steps_per_second": step / (time.perf_counter() - start),
            }
            logger.log(record, step=step, summary_keys=SUMMARY_KEYS)
            if plateau.reached(best):
                last_step = step
                log.info("Stage 1: validation has plateaued; stopping at step %d of %d", step, config.steps)
                break
    bar.close()
    batches.close()  # stops the processes that read streamed frames (else garbage collection does)
    logger.close()
    calibration = calibrate_detector(
        out / "checkpoints" / "reward", val_frames, val.columns["is_success"], config.success_threshold
    )
    log.info("success threshold s = %.3f steps (%s)", calibration["threshold"], calibration["method"])
    constant = constant_d_error(train.steps_to_go, val_frames.steps_to_go, model.steps_to_go_bins)
    log.info("a constant d would be off by %.2f steps on validation", constant)
    policy, _ = load_checkpoint(out / "checkpoints" / "policy")
    summary = {
        "wall_seconds": time.perf_counter() - start,
        "steps": last_step,
        "max_steps": config.steps,
        "best": best,
        "d_error_of_a_constant": constant,
        "calibration": calibration,
        "grounding": domain.stage1_checks(policy, metadata["env"]["config"]),  # the domain's diagnostics
        "val_episode_ids": val_ids.tolist(),
    }
    (out / "sft_summary.json").write_text(json.dumps(summary, indent=2))
    return out


# The validation figures the log's one-line summary shows (those a run has).
SUMMARY_KEYS = (
    "sft/step",
    "sft/val_bc_loss",
    "sft/val_steps_to_go_loss",
    "sft/val_d_error",
    "sft/val_d_error_near_goal",
    "sft/val_instruction_accuracy",
    "sft/val_board_error_cm",
)


# Frames whose statistics a randomly initialised vision encoder's batch norms take
# (ModelConfig.vision_weights): each channel's mean over ~10^7 pixel positions, in seconds of rendering.
RANDOM_ENCODER_FRAMES = 2048


def action_reference(config: ModelConfig, reference: tuple[int, ...], action_dim: int) -> tuple[int, ...]:
    """The state number each action number is predicted relative to (`ModelConfig.actions`), or ()."""
    if config.actions != "from_state":
        return ()
    if len(reference) != action_dim:
        raise ValueError(
            "--sft.model.actions from_state needs a domain that says which state number each action "
            f"commands, and this data's domain names {len(reference)} for {action_dim} action numbers: use "
            "--sft.model.actions absolute."
        )
    return reference


def build_model(config: SFTConfig, train: EpisodeDataset, tokenizer: WordTokenizer | None = None) -> EFMBase:
    """A fresh EFM sized and normalised for the training episodes (the BC statistics skip final frames).

    `config.model` must be resolved; 'words' instructions need the tokenizer of the dataset's tasks.
    """
    model_config = config.model
    columns = train.columns
    goal_dim = {"words": model_config.max_words, "vector": None}.get(model_config.goal_encoder, MAX_TOKENS)
    if goal_dim is None:
        goal_dim = columns["goal"].shape[1]
    vocabulary = tuple(tokenizer.vocabulary) if tokenizer is not None else ()
    state, action = columns["observation.state"], columns["action"]
    observed = env_spec(train.info["siefm"]["env"])
    reference = action_reference(model_config, observed.action_reference, action.shape[1])
    spec = ModelSpec(state.shape[1], goal_dim, action.shape[1], vocabulary, observed.object_names, reference)
    goal = columns["goal"] if "goal" in columns else np.zeros((1, goal_dim))  # used by vector goals only
    if reference:  # the head's statistics are of the change from each action's state number
        action = action - state_offsets(torch.from_numpy(np.asarray(state)), reference).numpy()
    stats = {
        "state": feature_stats(state),
        "goal": feature_stats(np.asarray(goal, dtype=np.float32)),
        "action": feature_stats(action[~columns["is_terminal"]]),
    }
    model = build_efm(model_config, spec, stats)
    if isinstance(model.vision, EfficientNetLite0) and model_config.vision_weights == "random":
        frames = sample_dataset_frames(train, model_config.image_size, RANDOM_ENCODER_FRAMES, config.seed)
        model.vision.measure_batch_norm(torch.from_numpy(frames))
    return model


FRAME_WORKERS = 1  # processes reading streamed frames (choice: 1 of this machine's 2 cores; docs/pixels.md)


def streams_frames(config: SFTConfig, model: EFMBase, num_frames: int) -> bool:
    """Whether a trainable encoder's frames are streamed (`SFTConfig.frames`; 'auto': when all of them
    would take more than a quarter of the machine's memory)."""
    if model.vision is None or not model.vision.trainable or config.frames == "memory":
        return False
    if config.frames == "stream":
        return True
    frame_bytes = 3 * model.config.image_size**2
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return num_frames * frame_bytes > memory / 4


def model_frames(model: EFMBase, dataset: EpisodeDataset, stream: bool = False) -> Frames:
    """A dataset's frames as `model` reads them: its goal input of each task (instruction goals), and for
    pixel models every frame (recorded, or rendered from its state), replaced by the features of a frozen
    encoder, which are so computed once per frame rather than once per batch; a trainable encoder's
    frames are read batch by batch where `stream`."""
    task_goals = None
    if model.config.goal_encoder != "vector":  # only the tasks these episodes use (a frozen encoder is slow)
        used = np.unique(dataset.columns["task_index"])
        encoded = model.goal_input([dataset.tasks[i] for i in used])
        task_goals = torch.zeros((len(dataset.tasks), *encoded.shape[1:]), dtype=encoded.dtype)
        task_goals[torch.from_numpy(used)] = encoded
    frames = Frames.from_dataset(dataset, task_goals)
    if model.vision is None:  # state models read the states as they are
        return frames
    trainable = model.vision.trainable
    size = model.config.image_size
    if trainable and stream:  # the frames themselves, read batch by batch
        images = StreamedImages(frame_reader(dataset, size), dataset.num_frames)
    elif trainable:  # the frames themselves, all in memory
        images = stack_chunks(map(torch.from_numpy, dataset_frame_chunks(dataset, size)), dataset.num_frames)
    else:  # a frozen encoder's images are never held whole
        images = encoded_dataset_frames(dataset, size, model.vision)
    ids = torch.from_numpy(frame_pairs(dataset))
    bounds = torch.from_numpy(dataset.episode_bounds)
    return dataclasses.replace(
        frames,
        images=images,
        image_ids=ids,
        images_are_features=not trainable,
        episode_ends=torch.stack([bounds[:, 0], bounds[:, 1] - 1], dim=1),
        episode_task=frames.goal[bounds[:, 0]],
    )


def hindsight_frames(model: EFMBase, train: Frames, labels: RelabelledGoals) -> Frames:
    """The relabelled frames as the model reads them: the training frames (states, and a pixel model's
    frames or features) with their hindsight instructions and labels, and no action (they are no
    demonstration of the relabelled goal)."""
    picked = train.batch(torch.from_numpy(labels.frame))
    return dataclasses.replace(
        picked,
        goal=torch.from_numpy(labels.instruction),
        goal_table=model.goal_input(list(labels.instructions)),
        steps_to_go=torch.from_numpy(labels.steps_to_go),
        has_action=torch.zeros(len(labels), dtype=torch.bool),
    )


FRAME_MEANS = ("steps_to_go_loss", "d_error", "board_error_cm")  # validation metrics averaged over frames


def eval_batch_size(model: EFMBase) -> int:
    """Frames per forward pass without gradients: smaller for pixel models, whose activations are large."""
    return 1024 if model.reads_frames else 8192


@torch.no_grad()
def validation_losses(model: EFMBase, frames: Frames, aux_batch: int = 128) -> dict[str, float]:
    """Frame-weighted validation BC and steps-to-go losses, and the mean error of d in steps. With the
    auxiliary objective, also its loss and retrieval accuracy over consecutive groups of `aux_batch`
    validation episodes (the training batch size: retrieval is harder among more instructions)."""
    totals = {"bc_loss": 0.0}
    near_goal_sum, near_goal_frames = 0.0, 0
    for chunk in frames.chunks(eval_batch_size(model)):
        _, metrics = sft_loss(model, chunk, with_d_error=True)
        totals["bc_loss"] += metrics["bc_loss"] * chunk.has_action.sum().item()
        for key in FRAME_MEANS:
            if key in metrics:
                totals[key] = totals.get(key, 0.0) + metrics[key] * len(chunk)
        near_goal_sum += metrics["near_goal_error_sum"]
        near_goal_frames += metrics["near_goal_frames"]
    result = {
        "bc_loss": totals.pop("bc_loss") / frames.has_action.sum().item(),
        **{key: total / len(frames) for key, total in totals.items()},
        "d_error_near_goal": near_goal_sum / max(near_goal_frames, 1),
    }
    if model.config.arms.instruction_aux_weight > 0:
        assert frames.episode_ends is not None  # pixel models' frames hold them
        num_episodes = len(frames.episode_ends)
        loss_sum = accuracy_sum = 0.0
        for start in range(0, num_episodes, aux_batch):
            group = torch.arange(start, min(start + aux_batch, num_episodes))
            loss, accuracy = model.instruction_aux_loss(*frames.endpoints(group))
            loss_sum += loss.item() * len(group)
            accuracy_sum += accuracy.item() * len(group)
        result["instruction_loss"] = loss_sum / num_episodes
        result["instruction_accuracy"] = accuracy_sum / num_episodes
    return result


@torch.no_grad()
def calibrate_detector(
    reward_checkpoint: Path, val: Frames, val_success: np.ndarray, threshold: float | None
) -> dict[str, Any]:
    """Stores s in the reward checkpoint: the given value, or the F1-best one on validation frames."""
    model, metadata = load_checkpoint(reward_checkpoint)
    if threshold is not None:
        result: dict[str, Any] = {"method": "given", "threshold": threshold}
    else:
        chunks = val.chunks(eval_batch_size(model))
        d = np.concatenate([model.steps_to_go(c.observation(), c.goal_input()).numpy() for c in chunks])
        calibration = calibrate_success_threshold(d, val_success)
        result = {"method": "calibrated: F1-best on validation frames", **calibration.__dict__}
    save_checkpoint(
        reward_checkpoint,
        model,
        {**metadata, "success_threshold": result["threshold"], "calibration": result},
    )
    return result
