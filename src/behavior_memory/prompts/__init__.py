"""Prompt templates shipped as package data; every one can be overridden from the YAML config."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from ..errors import ConfigError

__all__ = ["load_prompt"]


@cache
def _packaged(name: str) -> str:
    return files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def load_prompt(name: str, override: str | None = None, *, required: tuple[str, ...] = ()) -> str:
    """The packaged prompt ``name``, or ``override`` (inline text, or ``@path/to/file.txt``).

    ``required`` lists the ``{placeholders}`` the template must keep; an override that drops one
    would silently lose data, so it is rejected with the placeholder named.
    """
    if override is None:
        text = _packaged(name)
    elif override.startswith("@"):
        path = Path(override[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read prompt file for '{name}': {exc}", path=str(path)) from exc
    else:
        text = override
    missing = [p for p in required if "{" + p + "}" not in text]
    if missing:
        raise ConfigError(
            f"prompt '{name}' must contain the placeholder(s) {', '.join('{' + m + '}' for m in missing)}"
        )
    return text
