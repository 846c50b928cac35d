import io
import json

import pytest

from behavior_memory import BehaviorMemory, BehaviorMemoryConfig
from behavior_memory.errors import InvalidBehaviorError, NotFoundError


@pytest.fixture
def memory(tmp_path):
    cfg = BehaviorMemoryConfig.model_validate(
        {"store": {"path": str(tmp_path / "h.db")}, "embeddings": {"provider": "hashing"}}
    )
    m = BehaviorMemory(cfg)
    yield m
    m.close()


def test_add_get_update_remove(memory):
    b = memory.handbook.add(
        "behavior_inclusion_exclusion", "Count a union by adding and subtracting overlaps.", topic="counting"
    )
    assert memory.handbook.get("behavior_inclusion_exclusion").id == b.id
    updated = memory.handbook.update(b.name, instruction="Add set sizes, subtract pairwise overlaps.")
    assert updated.version == 2 and updated.instruction.startswith("Add set sizes")
    memory.handbook.remove(b.name)
    with pytest.raises(NotFoundError):
        memory.handbook.get(b.name)


def test_bad_behavior_is_rejected_with_reason_and_nothing_stored(memory):
    with pytest.raises(InvalidBehaviorError, match="must start with 'behavior_'"):
        memory.handbook.add("inclusion_exclusion", "x")
    with pytest.raises(InvalidBehaviorError, match="one line"):
        memory.handbook.add("behavior_two_lines", "a\nb")
    assert memory.handbook.count() == 0


def test_export_import_roundtrip_into_another_namespace(memory):
    """An export of one's own handbook is trusted: pins, statuses and counters come along."""
    memory.handbook.add("behavior_alpha", "Add the alpha terms before the beta terms.", topic="t")
    memory.handbook.add("behavior_beta", "Check the beta terms against the total.", pinned=True)
    out = io.StringIO()
    assert memory.handbook.export_jsonl(out) == 2
    report = memory.handbook.import_jsonl(io.BytesIO(out.getvalue().encode()), namespace="team-b", trust=True)
    assert (report.imported, report.errors) == (2, [])
    copied = memory.handbook.list(namespace="team-b")
    assert [b.name for b in copied] == ["behavior_alpha", "behavior_beta"]
    assert copied[1].pinned and copied[0].topic == "t"
    # ids are fresh: the two namespaces do not share records
    assert {b.id for b in copied}.isdisjoint({b.id for b in memory.handbook.list()})


def test_import_keeps_good_lines_and_reports_bad_ones_by_number(memory, tmp_path):
    memory.handbook.add("behavior_existing", "Keep the first answer unless a check fails.")
    lines = [
        json.dumps({"name": "behavior_good_one", "instruction": "Write the known quantities down first."}).encode(),
        b"{not json",
        json.dumps({"name": "bad name", "instruction": "x"}).encode(),
        "caf\xe9".encode("latin-1"),
        json.dumps(
            {"name": "behavior_good_two", "instruction": "Estimate the answer before computing it.", "topic": "t"}
        ).encode(),
        json.dumps({"name": "behavior_good_one", "instruction": "Duplicate in file."}).encode(),
        json.dumps({"name": "behavior_existing", "instruction": "Changed."}).encode(),
        json.dumps([1, 2]).encode(),
        json.dumps({"name": "behavior_extra", "instruction": "x", "surprise": 1}).encode(),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = memory.handbook.import_jsonl(path)
    assert report.imported == 2
    bad = dict(report.errors)
    assert set(bad) == {2, 3, 4, 6, 8, 9}
    assert "not valid JSON" in bad[2] and "behavior_" in bad[3] and "UTF-8" in bad[4]
    assert "duplicate of line 1" in bad[6] and "surprise" in bad[9]
    assert [n for n, _ in report.skipped] == [7]
    assert memory.handbook.get("behavior_existing").instruction == "Keep the first answer unless a check fails."
    names = [b.name for b in memory.handbook.list()]
    assert names == ["behavior_existing", "behavior_good_one", "behavior_good_two"]

    replaced = memory.handbook.import_jsonl(path, replace=True)
    assert replaced.replaced == 3  # good_one, good_two and existing; line 6 is still a duplicate
    assert memory.handbook.get("behavior_existing").instruction == "Changed."


def test_import_missing_file_is_clear(memory, tmp_path):
    with pytest.raises(Exception, match="cannot read"):
        memory.handbook.import_jsonl(tmp_path / "missing.jsonl")
