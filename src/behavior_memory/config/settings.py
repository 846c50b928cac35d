"""The configuration: one YAML file, validated by pydantic, every section with its defaults.

``load_config(path)`` reads YAML with ``${ENV}`` interpolation and ``BMEM_SECTION__KEY`` env
overrides; unknown keys and wrong types are errors naming the key and the line. Relative paths
(the SQLite file, prompt files) are resolved against the YAML file's folder, so a project's
handbook lives beside its configuration.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..embeddings.config import EmbeddingsConfig, default_embeddings_config
from ..guard.guard import GuardConfig
from ..guard.judge import JudgeConfig
from ..lifecycle.policy import LifecycleConfig
from ..llm.config import LLMConfig
from ..retrieval.config import RetrievalConfig
from ..types import DEFAULT_NAMESPACE, validate_namespace
from .loader import json_schema, load_model, load_model_from_text
from .serve import ServeConfig
from .sft import SFTConfig

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "BehaviorMemoryConfig",
    "CurationConfig",
    "InjectionConfig",
    "ReflectionConfig",
    "StoreConfig",
    "config_schema",
    "default_data_dir",
    "load_config",
    "load_config_text",
]

DEFAULT_CONFIG_NAME = "behavior-memory.yaml"


def default_data_dir() -> Path:
    """Where the handbook lives when no configuration says otherwise (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "behavior-memory"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Section):
    """Where behaviors and traces are kept: one SQLite file, or a PostgreSQL database many machines share."""

    backend: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="Store back-end: sqlite (one local file) or postgres (PostgreSQL with pgvector, shared "
        'by many agents on many machines; pip install "behavior-memory[postgres]").',
    )
    path: str | None = Field(
        default=None,
        description="SQLite file; relative paths are resolved against the YAML file's folder. "
        "Default: $XDG_DATA_HOME/behavior-memory/handbook.db.",
    )
    dsn: str | None = Field(
        default=None,
        description="PostgreSQL connection string for backend: postgres, e.g. "
        "postgresql://bmem:secret@db.internal/handbook or ${BMEM_PG_DSN}; tables go to the first schema "
        "of its search_path (options=-csearch_path=myschema,public picks one).",
    )
    pool_size: int = Field(default=10, ge=1, le=200, description="PostgreSQL connections at most per process.")
    connect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="PostgreSQL: how long a connection attempt, or the wait for a free pooled connection, may take.",
    )
    # PostgreSQL vector search (pgvector HNSW); store.postgres_search explains each knob
    hnsw_ef_search: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="PostgreSQL: candidates one HNSW walk keeps (hnsw.ef_search): more finds more of the true "
        "nearest behaviors and takes longer. Raised for a query whose k is larger.",
    )
    hnsw_iterative_scan: Literal["off", "strict_order", "relaxed_order"] = Field(
        default="relaxed_order",
        description="PostgreSQL: when the status and topic filters drop candidates, walk on until enough pass "
        "(hnsw.iterative_scan). relaxed_order finds the most (its candidates are re-ranked exactly); "
        "strict_order drops late finds; off can return fewer than k.",
    )
    hnsw_max_scan_tuples: int = Field(
        default=20_000,
        ge=1,
        description="PostgreSQL: rows one walk may visit before it stops (hnsw.max_scan_tuples); a search it "
        "leaves short of k is answered by an exact scan of the filtered rows.",
    )
    hnsw_candidates: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="PostgreSQL: rows that pass the filters taken from a walk (k + 1 if more) and re-ranked "
        "exactly by similarity, then name; each one more costs a longer walk under a narrow topic filter.",
    )
    hnsw_m: int = Field(
        default=16,
        ge=2,
        le=100,
        description="PostgreSQL: links per node of an HNSW index built from now on (m): more recall at the "
        "same hnsw_ef_search, a larger index, a slower build.",
    )
    hnsw_ef_construction: int = Field(
        default=128,
        ge=4,
        le=1000,
        description="PostgreSQL: candidates kept while building an index (ef_construction, at least 2 x "
        "hnsw_m): a better graph, a slower build.",
    )
    hnsw_build_memory_mb: int = Field(
        default=1024,
        ge=64,
        description="PostgreSQL: maintenance_work_mem of an index build. The graph should fit: about 2 KB per "
        "384-d vector at hnsw_m 16 (1M behaviors: 2.5 GB); past it the build is many times slower.",
    )
    hnsw_build_workers: int = Field(
        default=2,
        ge=0,
        le=64,
        description="PostgreSQL: parallel workers of an index build (max_parallel_maintenance_workers; the "
        "server's max_worker_processes bounds it).",
    )
    busy_timeout_s: float = Field(default=10.0, gt=0, description="How long one SQLite call waits for a lock.")
    write_budget_s: float = Field(
        default=0.2,
        gt=0,
        description="How long an agent's run waits for another writer's lock when it saves its trace; "
        "past it the trace goes to the spool and is written later (never dropped).",
    )
    spool_path: str | None = Field(
        default=None,
        description="Folder for traces waiting to be written; default: beside the SQLite file "
        "(<store.path>.spool), or for postgres $XDG_DATA_HOME/behavior-memory/spool/<hash of the dsn>. "
        "Relative paths are resolved against the YAML file's folder.",
    )

    @model_validator(mode="after")
    def _check_backend(self) -> StoreConfig:
        if self.backend == "postgres" and not (self.dsn or "").strip():
            raise ValueError(
                "store.backend is postgres but store.dsn is not set: give a connection string, "
                "e.g. dsn: ${BMEM_PG_DSN} with BMEM_PG_DSN=postgresql://user:password@host/dbname"
            )
        if self.hnsw_ef_construction < 2 * self.hnsw_m:
            raise ValueError(
                f"store.hnsw_ef_construction ({self.hnsw_ef_construction}) must be at least twice "
                f"store.hnsw_m ({self.hnsw_m})"
            )
        return self


class InjectionConfig(_Section):
    """How the behavior block is rendered into prompts."""

    template: str | None = Field(
        default=None,
        description="Override of the behavior-conditioned block: inline text or '@path/to/file.txt'; "
        "must contain {behaviors}.",
    )


class ReflectionConfig(_Section):
    """When and how finished traces are reflected on to mint behaviors."""

    mode: Literal["background", "manual", "off"] = Field(
        default="background",
        description="background: a worker in this process reflects saved traces; manual: traces wait "
        "for `bmem reflect`; off: traces are recorded but never reflected.",
    )
    concurrency: int = Field(default=1, ge=1, le=64, description="Traces reflected at once.")
    max_attempts: int = Field(default=3, ge=1, description="Attempts per trace before it is marked failed.")
    lease_s: float = Field(
        default=600.0, gt=0, description="A trace claimed by a process that died is retried after this."
    )
    max_trace_tokens: int = Field(
        default=3000, gt=100, description="Longer traces are cut in the middle (task and end kept)."
    )
    max_behaviors_per_trace: int = Field(default=5, ge=1, le=20, description="At most this many behaviors per trace.")
    min_behaviors_per_trace: int = Field(
        default=1,
        ge=0,
        le=20,
        description="The extraction schema asks for at least this many (0 lets the model propose none).",
    )
    reflection_max_tokens: int = Field(default=512, gt=0, description="Output budget of the reflection stage.")
    extraction_max_tokens: int = Field(default=400, gt=0, description="Output budget of the extraction stage.")
    model: str | None = Field(default=None, description="Model for reflection; default: llm.model.")
    llm: Literal["server", "agent"] = Field(
        default="server",
        description="server: reflect on the model server of the llm section (the local vLLM); agent: reflect "
        "with the chat model or LLM the agent already uses, handed over by the LangChain middleware or "
        "LlamaIndex wrap (no second server; traces wait until an agent has run).",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra request fields for the reflection calls only, e.g. {repetition_penalty: 1.2} "
        "for small models that loop.",
    )
    reflection_prompt: str | None = Field(default=None, description="Override (text or '@file').")
    extraction_prompt: str | None = Field(default=None, description="Override (text or '@file').")


class CurationConfig(_Section):
    """What happens to minted behaviors before they enter the handbook, and to them afterwards.

    ``lifecycle`` drives ``bmem curate`` (and the worker's curation passes): when behaviors go
    stale, come back, or are archived, and the randomised-exposure experiment that measures them.
    A candidate's support is ``min_support`` here, for the curator and the lifecycle alike.
    """

    dedup_threshold: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="A candidate at least this similar (cosine) to a behavior in the same namespace "
        "and topic merges into it instead of being added.",
    )
    approval: Literal["evidence", "auto", "manual"] = Field(
        default="evidence",
        description="evidence: minted behaviors wait as candidates until min_support distinct traces back "
        "them (or a person approves them with `bmem review`); auto: active at once; manual: only a "
        "person activates them. Behaviors the guard flags are quarantined in every mode.",
    )
    min_support: int = Field(
        default=2,
        ge=1,
        le=100,
        description="With approval: evidence, how many distinct traces must mint (or merge into) a "
        "behavior before it becomes active (when a reflection merges, and in `bmem curate`).",
    )
    guard: GuardConfig = Field(
        default_factory=GuardConfig,
        description="The deterministic rules every behavior passes before it can be active (reflection, "
        "`bmem behaviors add|edit|import`): allowed_hosts, extra_patterns, disabled_rules, length limits.",
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig,
        description="Optional: the model (same server) judges minted candidates that passed the rules "
        "(useful / useless / unsafe); off by default.",
    )
    interval_s: float = Field(
        default=3600.0,
        ge=0,
        description="The background worker runs a curation pass (as `bmem curate`) when idle, at most "
        "this often; 0 leaves curation to `bmem curate`.",
    )
    lifecycle: LifecycleConfig = Field(
        default_factory=LifecycleConfig,
        description="Curation passes (`bmem curate`): stale_after_tasks, archive_min_evidence, archive_harm_lcb, "
        "revive_stale_on_use; withhold_epsilon > 0 withholds each chosen behavior from a task with that "
        "probability to measure its effect (`bmem behaviors utility`), utility_min_samples per arm before a verdict.",
    )


class BehaviorMemoryConfig(_Section):
    """The whole configuration of behavior-memory."""

    namespace: str = Field(
        default=DEFAULT_NAMESPACE, description="Default namespace (tenant/agent/user) for reads and writes."
    )
    llm: LLMConfig = Field(default_factory=LLMConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=default_embeddings_config)
    store: StoreConfig = Field(default_factory=StoreConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    reflection: ReflectionConfig = Field(default_factory=ReflectionConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)

    #: Folder that relative paths are resolved against (the YAML file's folder); not a YAML key.
    _base_dir: Path | None = None

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        # Here, not at first use: `namespace: ""` used to pass `bmem config check`, then break every command.
        return validate_namespace(value)

    def store_path(self) -> Path:
        """The SQLite file, with relative paths resolved against the YAML file's folder."""
        if self.store.path is None:
            return default_data_dir() / "handbook.db"
        path = Path(os.path.expanduser(self.store.path))
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        return path

    def spool_path(self) -> Path:
        """The trace spool's folder: ``store.spool_path``, or beside the SQLite file."""
        if self.store.spool_path is None:
            return Path(f"{self.store_path()}.spool")
        path = Path(os.path.expanduser(self.store.spool_path))
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        return path

    def resolve(self, value: str | None) -> str | None:
        """Resolve an '@relative/file' prompt override against the YAML file's folder."""
        if value and value.startswith("@") and self._base_dir is not None:
            path = Path(os.path.expanduser(value[1:]))
            if not path.is_absolute():
                return "@" + str(self._base_dir / path)
        return value


def load_config(path: str | Path, *, env: dict[str, str] | None = None) -> BehaviorMemoryConfig:
    """Load and validate a YAML configuration; raises ``ConfigError`` naming the key and line."""
    config = load_model(BehaviorMemoryConfig, path, env=env)
    config._base_dir = Path(path).expanduser().resolve().parent
    return config


def load_config_text(
    text: str, *, source: str = "<string>", env: dict[str, str] | None = None, base_dir: Path | None = None
) -> BehaviorMemoryConfig:
    """Like ``load_config`` for YAML text (stdin, tests)."""
    config = load_model_from_text(BehaviorMemoryConfig, text, source=source, env=env)
    config._base_dir = base_dir or Path.cwd()
    return config


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the YAML file (``bmem config schema``), for editors and CI checks."""
    return json_schema(BehaviorMemoryConfig)
