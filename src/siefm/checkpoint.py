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

from siefm.config import ModelConfig, from_dict, migrate_model_config, to_dict
from siefm.domains import ObservationSpec, get_domain
from siefm.models.build import build_efm
from siefm.models.efm import EFMBase, ModelSpec

FORMAT = "siefm.checkpoint/1"
WEIGHTS = "model.safetensors"
METADATA = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit what it is used for."""


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
        # Options a checkpoint predates take the value its model was built with, not today's default.
        config = from_dict(ModelConfig, migrate_model_config(info["model_config"]))
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


def env_spec(env: dict[str, Any]) -> ObservationSpec:
    """The observation spec of an env described as in metadata ({"id", "config"}), from its domain."""
    try:
        domain = get_domain(env.get("id", ""))
    except ValueError as error:
        raise CheckpointError(str(error)) from error
    return domain.observation_spec(env.get("config", {}))


def fit_to_env(path: Path, model: EFMBase, env: dict[str, Any]) -> None:
    """Refuses a checkpoint that does not fit the env (`check_fits_env`), then tells the model the names of
    the env's objects, which may differ from its training board's (a novel object)."""
    check_fits_env(path, model, env)
    if names := env_spec(env).object_names:
        model.use_object_names(names)


def check_fits_env(path: Path, model: EFMBase, env: dict[str, Any]) -> None:
    """Refuses a checkpoint whose observation size or kind of goal differs from the env's."""
    spec = env_spec(env)
    model_goal = model.spec.goal_dim if model.config.goal_encoder == "vector" else None
    if (model.spec.state_dim, model_goal) != (spec.state_dim, spec.goal_dim):

        def goal(dim: int | None) -> str:
            return "instructions" if dim is None else f"goal vectors of size {dim}"

        raise CheckpointError(
            f"{path} expects observations of size {model.spec.state_dim} and {goal(model_goal)}, but "
            f"{env['id']} gives {spec.state_dim} and {goal(spec.goal_dim)}: use a checkpoint trained on data "
            "from this env."
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
