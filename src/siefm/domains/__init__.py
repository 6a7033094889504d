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
    max_episode_steps: int | None = None  # gymnasium's time limit, for domains that read it from there


REGISTRY: dict[str, Registration] = {
    "pointmass": Registration(
        "siefm/PointMass-v0", "siefm.domains.pointmass.env:PointMassEnv", "siefm.domains.pointmass.domain"
    ),
    "tabletop": Registration(
        "siefm/Tabletop-v0", "siefm.domains.tabletop.env:TabletopEnv", "siefm.domains.tabletop.domain"
    ),
    # Needs `pip install 'siefm[aloha]'` (gym-aloha) to make the env; the domain itself imports without it.
    "aloha": Registration(
        "siefm/Aloha-v0", "siefm.domains.aloha.env:AlohaEnv", "siefm.domains.aloha.domain", 150
    ),
}

for _registration in REGISTRY.values():
    if _registration.env_id not in gym.registry:
        gym.register(
            id=_registration.env_id,
            entry_point=_registration.entry_point,
            max_episode_steps=_registration.max_episode_steps,
        )


class UnknownDomainError(ValueError):
    """A name or env id that no registered domain has."""


def domain_names() -> tuple[str, ...]:
    """The registered domains' names, in registration order (the CLI's choices)."""
    return tuple(REGISTRY)


def get_domain(name_or_env_id: str) -> Domain:
    """The domain registered under a name ("pointmass") or whose env has this gymnasium id; for any other
    id that gymnasium can make (`module:EnvId` imports the module), the generic gymnasium domain."""
    for name, registration in REGISTRY.items():
        if name == name_or_env_id:
            return importlib.import_module(registration.module).DOMAIN
    domain = find_domain(name_or_env_id)
    if domain is None:
        known = ", ".join(f"{name} ({r.env_id})" for name, r in REGISTRY.items())
        raise UnknownDomainError(
            f"{name_or_env_id!r} is neither a registered domain nor an env id gymnasium knows; siefm knows "
            f"{known}, and any id gymnasium.make accepts (module:EnvId imports your package first)."
        )
    return domain


def find_domain(env_id: str) -> Domain | None:
    """The domain of the env `env_id`: the registered domain that owns it, else the generic gymnasium
    domain when gymnasium can make it, else None."""
    for registration in REGISTRY.values():
        if env_id == registration.env_id:
            return importlib.import_module(registration.module).DOMAIN
    from siefm.domains.gymnasium_env.env import is_known

    if not is_known(env_id):
        return None
    from siefm.domains.gymnasium_env.domain import GymnasiumDomain

    if env_id not in _generic:
        _generic[env_id] = GymnasiumDomain(env_id)
    return _generic[env_id]


def generic_collect_config() -> type:
    """The collect options of an env without a registered domain (`siefm collect --env ENV_ID --policy`)."""
    from siefm.domains.gymnasium_env.collect import GymCollectConfig

    return GymCollectConfig


_generic: dict[str, Domain] = {}  # one generic domain per env id, so its env is inspected once


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
    "generic_collect_config",
    "get_domain",
]
