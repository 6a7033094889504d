"""Checkpoints as a directory of `model.safetensors` + `checkpoint.json`; never pickle.

The JSON holds everything needed to rebuild the model without the training code's state: the model
config, the sizes fixed by the data (`ModelSpec`), the env the data came from, and free-form metadata
(training step, validation loss, the calibrated success threshold). Normalisation statistics are model
buffers, so they travel inside the safetensors file. Writes go to a temporary directory that is renamed
into place, so an interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from siefm.config import POINTMASS_ID, TABLETOP_ID, ModelConfig, from_dict, to_dict
from siefm.envs.pointmass import GOAL_DIM, STATE_DIM
from siefm.envs.tabletop.scene import BLOCK_SETS
from siefm.models.build import build_efm
from siefm.models.efm import EFMBase, ModelSpec

FORMAT = "siefm.checkpoint/1"
WEIGHTS = "model.safetensors"
METADATA = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit what it is used for."""


# What models were built with before these ModelConfig fields existed or changed their default: words
# encoded from the start only, 64 x 64 frames read by flattening the map, a steps-to-go tower on the map.
CHECKPOINT_DEFAULTS = {
    "word_positions": "start",
    "image_size": 64,
    "pixel_readout": "flatten",
    "pixel_steps_to_go_sees": "map",
    "selector_queries": 2,
    "selector_scores": "dot",
    "selector_keys": "slots",
    "board_towers_learn_from": "estimate",
}


def save_checkpoint(path: Path, model: EFMBase, metadata: dict[str, Any] | None = None) -> Path:
    """Writes `model` and `metadata` (JSON-ready) to the directory `path`, replacing it atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / WEIGHTS))  # stores a tensor that two modules share (a shared tower) once
    info = {
        "format": FORMAT,
        "model_config": to_dict(model.config),
        "spec": to_dict(model.spec),
        "metadata": metadata or {},
    }
    (tmp / METADATA).write_text(json.dumps(info, indent=2))
    replace_dir(tmp, path)
    return path


def load_checkpoint(path: Path) -> tuple[EFMBase, dict[str, Any]]:
    """Rebuilds the model saved at `path`; returns it (eval mode) and the checkpoint's metadata."""
    path = Path(path)
    info = read_checkpoint_info(path)
    try:
        # Fields a checkpoint may predate take the value its model was built with, not today's default.
        config = from_dict(ModelConfig, {**CHECKPOINT_DEFAULTS, **info["model_config"]})
        env_id = info["metadata"].get("env", {}).get("id")
        if env_id is not None:  # fields added since the checkpoint was written take their domain default
            config = config.resolve(env_id)
        spec = ModelSpec(**info["spec"])
        # Buffers and weights are overwritten by the saved ones, so packaged pretrained weights are not read.
        model = build_efm(config, spec, placeholder_stats(spec), pretrained=False)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path / METADATA} has an invalid model description ({error}).") from error
    try:
        load_model(model, str(path / WEIGHTS))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path / WEIGHTS} is not a readable safetensors file ({error}).") from error
    except RuntimeError as error:
        raise CheckpointError(f"{path / WEIGHTS} does not match the model in {METADATA}: {error}") from error
    return model.eval(), info["metadata"]


def env_sizes(env: dict[str, Any]) -> tuple[int, int | None]:
    """State size and goal-vector size (None: instruction goals) of an env described as in metadata."""
    if env.get("id") == POINTMASS_ID:
        return STATE_DIM, GOAL_DIM
    if env.get("id") == TABLETOP_ID:
        return 4 + 4 * len(BLOCK_SETS[env["config"].get("block_set", "8")]), None
    raise CheckpointError(f"unknown env {env.get('id')!r}: siefm knows {POINTMASS_ID} and {TABLETOP_ID}.")


def env_object_names(env: dict[str, Any]) -> tuple[str, ...]:
    """Names of the objects whose rows an env's state lists, as an instruction words them (tabletop: colour
    and shape); () for envs without objects."""
    if env.get("id") != TABLETOP_ID:
        return ()
    return tuple(f"{b.colour} {b.shape}" for b in BLOCK_SETS[env["config"].get("block_set", "8")])


def fit_to_env(path: Path, model: EFMBase, env: dict[str, Any]) -> None:
    """Refuses a checkpoint that does not fit the env (`check_fits_env`), then tells the model the names of
    the env's objects, which may differ from its training board's (the banana board)."""
    check_fits_env(path, model, env)
    if names := env_object_names(env):
        use_names = getattr(model, "use_object_names", None)
        if use_names is not None:
            use_names(names)


def check_fits_env(path: Path, model: EFMBase, env: dict[str, Any]) -> None:
    """Refuses a checkpoint whose observation size or kind of goal differs from the env's."""
    state_dim, goal_dim = env_sizes(env)
    spec = model.spec
    model_goal = spec.goal_dim if model.config.goal_encoder == "vector" else None
    if (spec.state_dim, model_goal) != (state_dim, goal_dim):

        def goal(dim: int | None) -> str:
            return "instructions" if dim is None else f"goal vectors of size {dim}"

        raise CheckpointError(
            f"{path} expects observations of size {spec.state_dim} and {goal(model_goal)}, but {env['id']} "
            f"gives {state_dim} and {goal(goal_dim)}: use a checkpoint trained on data from this env."
        )


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """The parsed `checkpoint.json`, with clear errors for a missing or foreign checkpoint."""
    if not (path / METADATA).is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointError(
            f"{path} is not a siefm checkpoint: it needs {WEIGHTS} and {METADATA}. "
            "Pass a checkpoint directory written by `siefm sft` or `siefm improve`."
        )
    try:
        info = json.loads((path / METADATA).read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{path / METADATA} is not valid JSON ({error}); the checkpoint is corrupt."
        ) from error
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path / METADATA} is not a {FORMAT} checkpoint description.")
    if not isinstance(info.get("metadata"), dict):
        raise CheckpointError(f"{path / METADATA} lacks its 'metadata' object; the checkpoint is corrupt.")
    return info


def replace_dir(src: Path, dst: Path) -> None:
    """Moves directory `src` to `dst`, replacing `dst`; the old copy is removed only after the move."""
    old = dst.with_name(dst.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def placeholder_stats(spec: ModelSpec) -> dict[str, dict[str, torch.Tensor]]:
    def stats(dim: int) -> dict[str, torch.Tensor]:
        return {
            "mean": torch.zeros(dim),
            "std": torch.ones(dim),
            "min": -torch.ones(dim),
            "max": torch.ones(dim),
        }

    return {"state": stats(spec.state_dim), "goal": stats(spec.goal_dim), "action": stats(spec.action_dim)}
