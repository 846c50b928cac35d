"""Start, probe and stop a local vLLM server.

Two ways to serve:

- **GPU** (production): ``vllm serve MODEL`` with prefix caching, prompt-token details (cached
  token counts in ``usage``), tool calling, and a reasoning parser for R1-distill / Qwen3 models.
  :func:`build_gpu_command` returns that command so ``bmem serve --print`` can show it.
- **Embedded default** (no GPU): vLLM's CPU build in a virtual environment of its own, serving
  SmolLM2-135M-Instruct converted from a GGUF shipped on PyPI (see :mod:`.embedded`), with our
  tool-aware ChatML template. It proves the plumbing, not the paper's numbers.

:func:`start` reuses a server that already answers on the port, otherwise launches one detached
(own session, output to ``<cache>/logs/vllm-<port>.log``, PID file in ``<cache>/run/``) and returns
once ``GET /v1/models`` answers. :func:`stop` terminates the process group named in the PID file.
HTTP probes use only the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from behavior_memory.errors import ServerError
from behavior_memory.serving import embedded
from behavior_memory.serving.commands import (
    ServeConfig,
    build_cpu_command,
    build_gpu_command,
    resolve_reasoning_parser,
)

__all__ = [
    "ServeConfig",
    "ServerInfo",
    "build_cpu_command",
    "build_gpu_command",
    "has_nvidia_gpu",
    "is_up",
    "list_models",
    "resolve_reasoning_parser",
    "start",
    "stop",
    "wait_until_ready",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerInfo:
    """A server that answers: where, which model id, and (when we know it) its PID and log."""

    base_url: str
    model: str
    pid: int | None
    log_path: Path | None


# --------------------------------------------------------------------------- probes


def has_nvidia_gpu() -> bool:
    """True when ``nvidia-smi -L`` lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return int(resp.status), bytes(resp.read())


def list_models(base_url: str, timeout: float = 3.0) -> list[str]:
    """The model ids ``GET {base_url}/models`` reports ([] when it does not answer with JSON)."""
    try:
        status, body = _get(base_url.rstrip("/") + "/models", timeout)
        if status != 200:
            return []
        data = json.loads(body)
    except (OSError, ValueError, urllib.error.URLError):
        return []
    return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, Mapping)]


def is_up(base_url: str, timeout: float = 3.0) -> bool:
    """True when ``GET {base_url}/models`` answers 200 (``base_url`` ends in ``/v1``)."""
    try:
        status, _ = _get(base_url.rstrip("/") + "/models", timeout)
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return status == 200


def _pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it is our dead child
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie that is not ours still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def wait_until_ready(
    base_url: str,
    timeout_s: float,
    proc: subprocess.Popen[Any] | int | None = None,
    *,
    log_path: Path | None = None,
    interval_s: float = 1.0,
) -> None:
    """Poll ``GET {base_url}/models`` until it answers.

    Raises ServerError (with the tail of ``log_path``) when ``proc`` (a Popen or a PID) dies
    first or ``timeout_s`` passes.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if is_up(base_url, timeout=min(5.0, max(0.5, interval_s * 2))):
            return
        exit_code: int | None = None
        died = False
        if isinstance(proc, subprocess.Popen):
            exit_code = proc.poll()
            died = exit_code is not None
        elif isinstance(proc, int):
            died = not _pid_alive(proc)
        if died:
            raise ServerError(
                f"vLLM server exited before it answered at {base_url}"
                + (f" (exit code {exit_code})" if exit_code is not None else "")
                + _tail_text(log_path),
                base_url=base_url,
                log_path=str(log_path) if log_path else None,
            )
        if time.monotonic() >= deadline:
            raise ServerError(
                f"vLLM server did not answer at {base_url} within {timeout_s:.0f}s" + _tail_text(log_path),
                base_url=base_url,
                log_path=str(log_path) if log_path else None,
            )
        time.sleep(interval_s)


def _tail_text(log_path: Path | None) -> str:
    if log_path is None:
        return ""
    tail = embedded.log_tail(log_path, 60)
    return f"; log: {log_path}\n--- log tail ---\n{tail}" if tail else f"; log: {log_path} (empty)"


# --------------------------------------------------------------------------- start / stop


def _run_dir(cache: Path) -> Path:
    return cache / "run"


def _pid_file(cache: Path, port: int) -> Path:
    return _run_dir(cache) / f"vllm-{port}.pid"


def _log_file(cache: Path, port: int) -> Path:
    return cache / "logs" / f"vllm-{port}.log"


def _read_pid_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


@contextlib.contextmanager
def _start_lock(cache: Path, port: int) -> Iterator[None]:
    path = _run_dir(cache) / f"vllm-{port}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    env.update(extra)
    return env


def _reuse(cfg: ServeConfig, cache: Path) -> ServerInfo:
    base_url = cfg.base_url
    served = list_models(base_url)
    model = cfg.served_model_name
    if served and model not in served:
        logger.warning(
            "a server already answers at %s but serves %s, not %r; reusing it with %r",
            base_url, served, model, served[0],
        )  # fmt: skip
        model = served[0]
    meta = _read_pid_file(_pid_file(cache, cfg.port)) or {}
    log = meta.get("log_path")
    logger.info("reusing the vLLM server already answering at %s", base_url)
    return ServerInfo(base_url, model, meta.get("pid"), Path(log) if log else None)


def start(cfg: ServeConfig, *, foreground: bool = False, cache_dir: Path | None = None) -> ServerInfo:
    """Make sure a server for ``cfg`` answers; return where.

    Reuses a server already answering on the port. Otherwise: on a machine with an NVIDIA GPU and
    ``cfg.model`` set, runs :func:`build_gpu_command`; otherwise prepares the embedded default
    (vLLM CPU venv + SmolLM2, or ``cfg.model`` served by the CPU build) and runs
    :func:`build_cpu_command`. Detached by default (own session, log in ``<cache>/logs``, PID file in
    ``<cache>/run``), returning once ``GET /v1/models`` answers. With ``foreground=True`` the output
    goes to this terminal and the call blocks until the server exits (Ctrl-C stops it).
    """
    cache = Path(cache_dir) if cache_dir is not None else embedded.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if is_up(cfg.base_url):
        return _reuse(cfg, cache)
    with _start_lock(cache, cfg.port):
        pid_file = _pid_file(cache, cfg.port)
        log = _log_file(cache, cfg.port)
        meta = _read_pid_file(pid_file)
        if meta is not None and _pid_alive(meta["pid"]):
            # Another process launched it and it is still loading: wait for that one.
            logger.info("a vLLM server (pid %s) is starting on port %s; waiting", meta["pid"], cfg.port)
            wait_until_ready(cfg.base_url, cfg.startup_timeout_s, meta["pid"], log_path=log)
            return _reuse(cfg, cache)
        if meta is not None:
            pid_file.unlink(missing_ok=True)

        env_extra: dict[str, str] = {}
        if cfg.model and has_nvidia_gpu():
            cmd = build_gpu_command(cfg)
            exe = shutil.which("vllm")
            if exe is None:
                raise ServerError("an NVIDIA GPU is present but vLLM is not installed: pip install vllm")
            cmd[0] = exe
        else:
            python = embedded.ensure_vllm_venv(cache)
            if cfg.model is None:
                model_dir: Path = embedded.ensure_model(cache, python)
                template: Path | None = embedded.chat_template_path()
                env_extra.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            else:
                model_dir, template = Path(cfg.model).expanduser(), None
                if model_dir.exists():  # a local folder (e.g. from `bmem sft train`): absolute, since cwd moves
                    model_dir = model_dir.resolve()
                    env_extra.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
                else:
                    model_dir = Path(cfg.model)  # an HF id: vLLM resolves it (needs the hub)
            cmd = build_cpu_command(cfg, python, model_dir, template)
            env_extra.setdefault("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        env = _child_env(env_extra)

        logger.info("starting vLLM: %s", " ".join(cmd))
        log.parent.mkdir(parents=True, exist_ok=True)
        if foreground:
            proc = subprocess.Popen(cmd, env=env, cwd=str(cache), stdin=subprocess.DEVNULL)
            log_path: Path | None = None
        else:
            with log.open("ab") as fh:
                fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n".encode())
                fh.flush()
                proc = subprocess.Popen(
                    cmd, env=env, cwd=str(cache), stdin=subprocess.DEVNULL, stdout=fh,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            log_path = log
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(
            json.dumps(
                {
                    "pid": proc.pid,
                    "base_url": cfg.base_url,
                    "model": cfg.served_model_name,
                    "log_path": str(log_path) if log_path else None,
                    "cmd": cmd,
                }
            )
        )
        started = time.monotonic()
        try:
            wait_until_ready(cfg.base_url, cfg.startup_timeout_s, proc, log_path=log_path)
        except BaseException:
            _terminate(proc.pid, proc)
            pid_file.unlink(missing_ok=True)
            raise
        logger.info("vLLM answers at %s after %.0fs (pid %s)", cfg.base_url, time.monotonic() - started, proc.pid)
        info = ServerInfo(cfg.base_url, cfg.served_model_name, proc.pid, log_path)

    if foreground:
        print(f"vLLM serving {cfg.served_model_name} at {cfg.base_url} (Ctrl-C stops it)", file=sys.stderr)
        try:
            proc.wait()
        except KeyboardInterrupt:
            _terminate(proc.pid, proc)
        finally:
            pid_file.unlink(missing_ok=True)
    return info


def _terminate(pid: int, proc: subprocess.Popen[Any] | None = None, timeout_s: float = 30.0) -> None:
    """SIGTERM the process group led by ``pid`` (or just ``pid``), then SIGKILL after ``timeout_s``."""

    try:
        group = os.getpgid(pid) == pid  # started with start_new_session: it leads its own group
    except ProcessLookupError:
        group = False

    def send(sig: signal.Signals) -> None:
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def alive() -> bool:
        if proc is not None:
            return proc.poll() is None
        return _pid_alive(pid)

    if not alive():
        return
    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive():
        logger.warning("vLLM (pid %s) ignored SIGTERM for %.0fs; killing it", pid, timeout_s)
        send(signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    if group:  # leftover workers of the group (EngineCore) go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def stop(cfg: ServeConfig, cache_dir: Path | None = None) -> bool:
    """Stop the server that :func:`start` launched on ``cfg.port``; True when one was stopped.

    Reads ``<cache>/run/vllm-<port>.pid``, terminates that process group, waits, removes the file.
    A server this library did not start (no PID file) is left alone and False is returned.
    """
    cache = Path(cache_dir) if cache_dir is not None else embedded.cache_dir()
    pid_file = _pid_file(cache, cfg.port)
    meta = _read_pid_file(pid_file)
    if meta is None:
        pid_file.unlink(missing_ok=True)
        return False
    pid = int(meta["pid"])
    was_alive = _pid_alive(pid)
    if was_alive:
        logger.info("stopping vLLM (pid %s) on port %s", pid, cfg.port)
        _terminate(pid)
    pid_file.unlink(missing_ok=True)
    (_run_dir(cache) / f"vllm-{cfg.port}.lock").unlink(missing_ok=True)
    return was_alive
