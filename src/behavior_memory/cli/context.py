"""What every command shares: which configuration to read, and the memory built from it, lazily."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConfigError

if TYPE_CHECKING:  # loaded by the commands that need them, so `bmem --help` stays instant
    from rich.console import Console

    from ..config.settings import BehaviorMemoryConfig
    from ..memory import BehaviorMemory

__all__ = ["CliContext", "pass_ctx"]


def _console(*, stderr: bool = False, width: int | None = None) -> Console:
    from rich.console import Console

    return Console(soft_wrap=True, stderr=stderr, width=width)


@dataclass
class CliContext:
    config_path: Path | None
    namespace: str | None
    debug: bool
    # Soft wrap keeps paths and ids whole; piped output gets room for the tables instead of 80 columns.
    console: Console = field(default_factory=lambda: _console(width=None if sys.stdout.isatty() else 140))
    err: Console = field(default_factory=lambda: _console(stderr=True))
    _config: BehaviorMemoryConfig | None = None
    _memory: BehaviorMemory | None = None

    def config(self) -> BehaviorMemoryConfig:
        """The --config file, else ./behavior-memory.yaml, else the defaults (with a note)."""
        from ..config.settings import DEFAULT_CONFIG_NAME, load_config, load_config_text

        if self._config is None:
            if self.config_path is not None:
                if not self.config_path.exists():
                    raise ConfigError("the configuration file does not exist", path=str(self.config_path))
                self._config = load_config(self.config_path)
            elif Path(DEFAULT_CONFIG_NAME).exists():
                self._config = load_config(DEFAULT_CONFIG_NAME)
            else:
                # Defaults, but BMEM_SECTION__KEY overrides still apply.
                self._config = load_config_text("", source="<defaults>")
                self.err.print(
                    f"[dim]no ./{DEFAULT_CONFIG_NAME} here: using the defaults "
                    f"(handbook {self._config.store_path()}); `bmem init` writes one[/dim]"
                )
            if self.namespace is not None:  # checked by the -n option: never empty
                self._config.namespace = self.namespace
        return self._config

    def memory(self) -> BehaviorMemory:
        from ..memory import BehaviorMemory

        if self._memory is None:
            self._memory = BehaviorMemory(self.config())
        return self._memory

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()


pass_ctx = click.make_pass_decorator(CliContext)
