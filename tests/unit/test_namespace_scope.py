"""Namespaces: matched whole, never empty, and a trace id reaches no further than its namespace."""

import pytest
from click.testing import CliRunner

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.cli.main import cli
from behavior_memory.config.settings import load_config_text
from behavior_memory.errors import ConfigError, InvalidBehaviorError, InvalidInputError, NotFoundError
from behavior_memory.types import pick_namespace, validate_behavior_name, validate_namespace

TRACE_ERROR = "in namespace"


def config(path, namespace="default"):
    return BehaviorMemoryConfig.model_validate(
        {
            "namespace": namespace,
            "store": {"path": str(path)},
            "embeddings": {"provider": "hashing"},
            "reflection": {"mode": "manual"},
        }
    )


@pytest.fixture
def db(tmp_path):
    return tmp_path / "h.db"


def record(db, namespace, task="q", output="by behavior_angle_sum"):
    with BehaviorMemory(config(db, namespace)) as memory:
        memory.handbook.add("behavior_angle_sum", "The interior angles of a triangle sum to 180 degrees.")
        with memory.trace(task=task) as t:
            t.model_call(output=output)
    return t.id


@pytest.mark.parametrize("name", ["behavior_ab\n", "behavior_ab\r\n", "behavior_a b", "behavior_ab\x00"])
def test_behavior_names_are_matched_whole(name):
    with pytest.raises(InvalidBehaviorError):
        validate_behavior_name(name)


@pytest.mark.parametrize("namespace", ["team\n", "acme/bot\n", "a//b", "/a", "a/", " a"])
def test_namespaces_are_matched_whole(namespace):
    with pytest.raises(InvalidInputError, match="is invalid"):
        validate_namespace(namespace)


def test_an_empty_namespace_is_an_error_that_says_where_it_came_from(db):
    assert pick_namespace(None, "acme") == "acme" and pick_namespace("team", "acme") == "team"
    with pytest.raises(InvalidInputError, match="the namespace= argument is empty"):
        pick_namespace("", "acme")
    with BehaviorMemory(config(db)) as memory:
        for call in (
            lambda: memory.retrieve("q", namespace=""),
            lambda: memory.trace(task="q", namespace=""),
            lambda: memory.traces.list(namespace=""),
            lambda: memory.handbook.list(namespace=""),
            lambda: memory.handbook.add("behavior_ab", "Do it.", namespace=""),
        ):
            with pytest.raises(InvalidInputError, match="empty"):
                call()


def test_the_config_refuses_an_empty_namespace_naming_the_key_and_line():
    with pytest.raises(ConfigError) as caught:
        load_config_text('llm:\n  model: m\nnamespace: ""\n', source="cfg.yaml", env={})
    assert caught.value.key == "namespace" and caught.value.line == 3 and "empty" in str(caught.value)
    with pytest.raises(ConfigError, match="is invalid"):
        load_config_text('namespace: "team\\n"\n', env={})
    with pytest.raises(ConfigError, match="BMEM_NAMESPACE"):
        load_config_text("", env={"BMEM_NAMESPACE": ""})


def test_get_and_feedback_reach_the_namespace_and_below_only(db):
    theirs = record(db, "tenant-a")
    child = record(db, "tenant-b/alice")
    with BehaviorMemory(config(db, "tenant-b")) as memory:
        with pytest.raises(NotFoundError, match=TRACE_ERROR) as foreign:
            memory.traces.get(theirs)
        with pytest.raises(NotFoundError, match=TRACE_ERROR) as missing:
            memory.traces.get("0" * 32)
        # a foreign id reads exactly like a missing one: ids cannot probe another tenant
        assert str(foreign.value).replace(theirs, "X") == str(missing.value).replace("0" * 32, "X")
        with pytest.raises(NotFoundError):
            memory.feedback(theirs, outcome="success")
        with pytest.raises(NotFoundError):
            memory.traces.feedback(theirs, outcome="failure", comment="not yours")
        with pytest.raises(NotFoundError):
            memory.traces.get(theirs, namespace="tenant")  # whole segments: 'tenant' is not 'tenant-a'
        assert memory.traces.get(child).namespace == "tenant-b/alice"  # the user_id namespaces below
        assert memory.traces.get(theirs, namespace="tenant-a").task == "q"
        assert memory.traces.get(theirs, all_namespaces=True).namespace == "tenant-a"
        assert memory.feedback(child, outcome="success").outcome == "success"
    with BehaviorMemory(config(db, "tenant-a")) as owner:
        trace = owner.traces.get(theirs)
        assert trace.outcome == "unknown" and trace.feedback is None  # the refused feedback changed nothing
        assert owner.handbook.get("behavior_angle_sum").helped == 0
        with pytest.raises(NotFoundError):
            owner.reflect_trace(child)  # reflect_trace reads through the same scope


def test_cli_namespace_option_scopes_traces_show(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "behavior-memory.yaml").write_text(
        f"store:\n  path: {db}\nembeddings:\n  provider: hashing\nreflection:\n  mode: manual\n"
    )
    theirs = record(db, "tenant-a", task="tenant a's secret task")
    runner = CliRunner()
    shown = runner.invoke(cli, ["-n", "tenant-b", "traces", "show", theirs])
    assert shown.exit_code == 1 and "secret" not in shown.output and "no trace" in shown.output
    assert "secret" in runner.invoke(cli, ["-n", "tenant-a", "traces", "show", theirs]).output
    empty = runner.invoke(cli, ["-n", "", "traces", "list"])
    assert empty.exit_code == 2 and "--namespace" in empty.output and "empty" in empty.output
    assert runner.invoke(cli, ["-n", "team\n", "traces", "list"]).exit_code == 2
