"""The domain registry: names -> domains (see `siefm.domains.base` for the contract).

A domain is registered by one line below: its name, the gymnasium id of its env, the env's entry point
and the module that holds its `DOMAIN` object. Modules are imported on first use, so `import siefm` does not
load a simulator; the envs are registered with gymnasium at once (gymnasium also imports them lazily).
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import gymnasium as gym

from siefm.domains.base import Domain, EnvConfig, FrameSource, ObservationSpec, Presets


class Registration(NamedTuple):
    env_id: str
    entry_point: str  # gymnasium's "module:Class" of the env
    module: str  # the module whose `DOMAIN` implements the contract


REGISTRY: dict[str, Registration] = {
    "pointmass": Registration(
        "siefm/PointMass-v0", "siefm.domains.pointmass.env:PointMassEnv", "siefm.domains.pointmass.domain"
    ),
    "tabletop": Registration(
        "siefm/Tabletop-v0", "siefm.domains.tabletop.env:TabletopEnv", "siefm.domains.tabletop.domain"
    ),
}

for _registration in REGISTRY.values():
    if _registration.env_id not in gym.registry:
        gym.register(id=_registration.env_id, entry_point=_registration.entry_point)


class UnknownDomainError(ValueError):
    """A name or env id that no registered domain has."""


def domain_names() -> tuple[str, ...]:
    """The registered domains' names, in registration order (the CLI's choices)."""
    return tuple(REGISTRY)


def get_domain(name_or_env_id: str) -> Domain:
    """The domain registered under a name ("pointmass") or whose env has this gymnasium id."""
    for name, registration in REGISTRY.items():
        if name_or_env_id in (name, registration.env_id):
            return importlib.import_module(registration.module).DOMAIN
    known = ", ".join(f"{name} ({r.env_id})" for name, r in REGISTRY.items())
    raise UnknownDomainError(f"no domain is registered as {name_or_env_id!r}; siefm knows {known}.")


def find_domain(env_id: str) -> Domain | None:
    """The domain that owns the env `env_id`, or None for an env no registered domain owns."""
    for registration in REGISTRY.values():
        if env_id == registration.env_id:
            return importlib.import_module(registration.module).DOMAIN
    return None


__all__ = [
    "REGISTRY",
    "Domain",
    "EnvConfig",
    "FrameSource",
    "ObservationSpec",
    "Presets",
    "UnknownDomainError",
    "domain_names",
    "find_domain",
    "get_domain",
]
