"""LanguageTable-class tabletop pushing on MuJoCo (TABLETOP.md): scene, task families, gymnasium env."""

import os
import sys

if sys.platform.startswith("linux"):  # off-screen rendering without a display (must precede `import mujoco`)
    os.environ.setdefault("MUJOCO_GL", "egl")

from siefm.envs.tabletop.env import TabletopConfig, TabletopEnv

__all__ = ["TabletopConfig", "TabletopEnv"]
