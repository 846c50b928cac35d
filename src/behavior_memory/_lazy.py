"""Names a package hands on but loads on first use (PEP 562), so importing it stays cheap."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["load_export"]


def load_export(package: str, modules: Mapping[str, str], name: str) -> Any:
    """``name`` from the module ``modules[name]`` (relative to ``package``), cached in the package.

    A package's ``__getattr__`` calls this; the value is stored in the package's globals, so later
    look-ups never come back here.
    """
    module = modules.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, package), name)
    setattr(sys.modules[package], name, value)
    return value
