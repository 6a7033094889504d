"""Optional dependencies: imported where a feature needs them, with an error that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module: str, purpose: str, extra: str = "pretrained", why: str = "") -> ModuleType:
    """Imports `module`, or raises a ValueError naming the extra that installs it (`why`: a sentence on
    what the extra brings, for features whose name alone does not say)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ValueError(
            f"{purpose} needs the package {module!r}, which siefm does not install by default. "
            f"{why}Install it with: pip install 'siefm[{extra}]'."
        ) from error
