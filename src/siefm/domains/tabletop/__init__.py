"""The LanguageTable-class tabletop on MuJoCo: scene, task families, env, oracle, fleet, evaluation."""

import os
import sys

if sys.platform.startswith("linux"):  # off-screen rendering without a display (must precede `import mujoco`)
    os.environ.setdefault("MUJOCO_GL", "egl")
