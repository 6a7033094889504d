"""Typed, frozen configs for every stage; field docstrings become the CLI's --help text (tyro). Every config
validates itself in `__post_init__`, with an error that names the field and the fix."""

from siefm.config.base import fill_defaults, from_dict, require, to_dict
from siefm.config.model import ModelArms, ModelConfig, migrate_model_config
from siefm.config.stages import EvalConfig, ImproveConfig, SFTConfig

__all__ = [
    "EvalConfig",
    "ImproveConfig",
    "ModelArms",
    "ModelConfig",
    "SFTConfig",
    "fill_defaults",
    "from_dict",
    "migrate_model_config",
    "require",
    "to_dict",
]
