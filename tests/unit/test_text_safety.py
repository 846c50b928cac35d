"""Text that cannot be written as UTF-8 (a lone surrogate) is stored with U+FFFD, never dropped."""

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.recording.text import clip, encodable, encodable_data, json_safe
from behavior_memory.store.sqlite import SQLiteStore
from behavior_memory.types import Step, Trace

BAD = "bytes \udcff here"  # what os.fsdecode leaves for a stray byte
FIXED = "bytes \ufffd here"


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate({"embeddings": {"provider": "hashing"}, "reflection": {"mode": "manual"}})
    with BehaviorMemory(cfg, store=SQLiteStore(tmp_path / "h.db")) as m:
        yield m


def test_encodable_replaces_lone_surrogates_and_joins_pairs():
    assert encodable("plain") == "plain"
    assert encodable(BAD) == FIXED
    assert encodable("\ud83d\ude00 and \ud83d") == "\U0001f600 and \ufffd"  # a pair is the one character it means
    assert clip(BAD * 3, limit=10).startswith("bytes \ufffd he")
    assert json_safe({"k\udcff": (BAD, 1)}) == {"k\ufffd": [FIXED, 1]}
    untouched = {"a": ["b", {"c": "d"}]}
    assert encodable_data(untouched) is untouched  # nothing to fix: no copy


def test_a_trace_with_surrogates_everywhere_is_stored_and_read_back(memory):
    with memory.trace(task=f"task {BAD}", topic=BAD, metadata={"note": BAD, BAD: [BAD]}) as t:
        t.model_call(
            messages=[{"role": "user", "content": BAD}, {"role": "user", "content": [{"text": BAD}]}], output=BAD
        )
        t.tool_call(
            name="read_file",
            args={"path": BAD, "opts": {"nested": [BAD]}},
            result=BAD.encode("utf-8", "surrogateescape"),
        )
        t.tool_call(name="read_file", args={}, result=BAD, error=BAD)
        t.finish(answer=BAD, feedback=BAD)
    saved = memory.traces.get(t.id)
    assert saved.task == f"task {FIXED}" and saved.topic == FIXED and saved.answer == FIXED
    assert saved.metadata["note"] == FIXED and saved.metadata[FIXED] == [FIXED]
    model, tool, failed = saved.steps
    assert model.output == FIXED and model.messages[0]["content"] == FIXED
    assert model.messages[1]["content"] == [{"text": FIXED}]
    assert tool.args == {"path": FIXED, "opts": {"nested": [FIXED]}}
    assert failed.result == FIXED and failed.error == FIXED
    assert saved.feedback == FIXED
    assert memory.feedback(t.id, comment=BAD).feedback == FIXED


def test_a_trace_built_by_hand_is_fixed_on_save(memory):
    trace = Trace(task=BAD, steps=[Step(kind="tool", name=BAD, args={BAD: BAD}, result=BAD)], answer=BAD)
    memory.traces.save(trace)
    saved = memory.traces.get(trace.id)
    assert (saved.task, saved.answer, saved.steps[0].name, saved.steps[0].result) == (FIXED,) * 4
    assert saved.steps[0].args == {FIXED: FIXED}


def test_a_failing_task_with_a_surrogate_in_its_error_is_kept(memory):
    with pytest.raises(OSError), memory.trace(task="open it") as t:
        raise OSError(f"cannot open {BAD}")
    assert memory.traces.get(t.id).metadata["error"] == f"OSError: cannot open {FIXED}"
