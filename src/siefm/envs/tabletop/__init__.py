"""LanguageTable-class tabletop pushing on MuJoCo (TABLETOP.md): scene, task families, gymnasium env."""

from siefm.envs.tabletop.env import TabletopConfig, TabletopEnv

__all__ = ["TabletopConfig", "TabletopEnv"]
