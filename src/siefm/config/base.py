"""What every config shares: validation with messages that name the field and the fix, JSON round trips,
and filling the fields a domain's presets decide."""

from __future__ import annotations

import dataclasses
from typing import Any


def require(condition: bool, config: object, name: str, rule: str) -> None:
    """Raises ValueError naming `config`'s field `name`, its value and the `rule` it breaks."""
    if not condition:
        value = getattr(config, name)
        raise ValueError(f"{type(config).__name__}.{name} = {value!r} is invalid: it must be {rule}.")


def fill_defaults(config: Any, defaults: dict[str, Any], names: tuple[str, ...], env_id: str) -> Any:
    """`config` with its None fields among `names` set from `defaults`; a field neither gives is an error."""
    missing = [name for name in names if getattr(config, name) is None]
    unset = [name for name in missing if name not in defaults]
    if unset:
        raise ValueError(
            f"there are no default {type(config).__name__} settings for the env {env_id!r}: "
            f"set {', '.join(unset)} explicitly."
        )
    return dataclasses.replace(config, **{name: defaults[name] for name in missing})


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuilds a (nested) config dataclass from `to_dict` output, validating it on the way."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and isinstance(value, dict):
            value = from_dict(type(sub()), value)
        kwargs[f.name] = tuple(value) if isinstance(value, list) else value  # JSON arrays were tuples
    return cls(**kwargs)
