"""``bmem serve``: start (or print, or stop) the vLLM server the configuration points at."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..serving import embedded, server
from .context import CliContext, pass_ctx

__all__ = ["serve"]


@click.command()
@click.option("--print", "print_only", is_flag=True, help="Print the command instead of running it.")
@click.option("--foreground", is_flag=True, help="Stay attached (Ctrl-C stops the server).")
@click.option("--stop", "stop_it", is_flag=True, help="Stop the server `bmem serve` started on this port.")
@click.option("--port", type=int, help="Port (default: serve.port).")
@click.option("--model", help="Model to serve (default: serve.model; none = the embedded SmolLM2 on CPU).")
@click.option("--served-model-name", help="Model id clients send (default: serve.served_model_name).")
@pass_ctx
def serve(
    obj: CliContext,
    print_only: bool,
    foreground: bool,
    stop_it: bool,
    port: int | None,
    model: str | None,
    served_model_name: str | None,
) -> None:
    """Serve the model: vLLM on a GPU, or the embedded CPU build with SmolLM2-135M.

    Returns once the server answers, printing its URL and model name; `--stop` stops it.
    """
    cfg = obj.config().serve
    if model and Path(model).expanduser().exists():  # the server runs elsewhere (cwd = the cache folder)
        model = str(Path(model).expanduser().resolve())
    chosen = {"port": port, "model": model, "served_model_name": served_model_name}
    updates = {k: v for k, v in chosen.items() if v is not None}
    if updates:
        cfg = cfg.model_copy(update=updates)
    if stop_it:
        stopped = server.stop(cfg)
        obj.console.print(
            f"stopped the server on port {cfg.port}"
            if stopped
            else f"no server started by bmem runs on port {cfg.port}"
        )
        return
    if print_only:
        if server.has_nvidia_gpu() and cfg.model:
            command = server.build_gpu_command(cfg)
        else:
            cache = embedded.cache_dir()
            # A --model folder (e.g. from `bmem sft train`) is served with its own chat template.
            model_dir, template = (
                (Path(cfg.model), None) if cfg.model else (embedded.model_dir(cache), embedded.chat_template_path())
            )
            command = server.build_cpu_command(cfg, embedded.venv_python(cache), model_dir, template)
        click.echo(shlex.join(str(part) for part in command))
        return
    info = server.start(cfg, foreground=foreground)
    obj.console.print(
        f"[green]serving[/green] {info.model} at {info.base_url}"
        + (f" (pid {info.pid}, log {info.log_path})" if info.pid else " (already running)")
    )
    llm = obj.config().llm
    if llm.base_url.rstrip("/") != info.base_url.rstrip("/") or llm.model != info.model:
        obj.err.print(
            f"[yellow]note: the configuration's llm points at {llm.model} on {llm.base_url}; set "
            f"llm.base_url: {info.base_url} and llm.model: {info.model} to use this server[/yellow]"
        )
