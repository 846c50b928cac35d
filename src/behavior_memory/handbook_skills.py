"""A handbook as Agent Skills: one skill folder per topic, and such folders read back as candidates.

The Agent Skills format (agentskills.io): a skill is a folder whose ``SKILL.md`` starts with YAML
front matter holding ``name`` (1-64 lower-case letters, digits and single hyphens, the folder's
own name) and ``description`` (1-1024 characters), followed by a Markdown body. ``export_skills``
writes the active behaviors of a namespace, one folder per topic (``behaviors-<topic>``, and
``behaviors-general`` for those without one), each behavior a ``- name: instruction`` line of the
body, so tools that read Agent Skills can load the handbook.

``import_skills`` reads such folders back (any ``SKILL.md`` whose body has ``behavior_...:``
lines): the behaviors go through ``handbook_jsonl.import_jsonl``, so they arrive exactly as an
untrusted JSONL import does, as candidates, through the guard (quarantined when it flags one),
their provenance "imported from skills <folder>"; problems are reported by file and line.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError
from .injection.render import behavior_line
from .prompts import load_prompt
from .types import BehaviorStatus, pick_namespace

if TYPE_CHECKING:
    from .handbook import Handbook
    from .handbook_jsonl import ImportReport
    from .types import Behavior

__all__ = ["SkillsReport", "export_skills", "import_skills", "skill_name"]

SKILL_FILE = "SKILL.md"
MAX_NAME = 64
MAX_DESCRIPTION = 1024
#: A SKILL.md larger than this is not read (a handbook's skill is a few kilobytes).
MAX_SKILL_BYTES = 1_000_000
_SOURCE = "behavior-memory"
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z")
# Any name after "behavior_" is taken, so a malformed one is reported by validation, not skipped as prose.
_LINE = re.compile(r"^\s*(?:[-*+]\s+)?`?(behavior_\w*)`?\s*:\s*(\S.*?)\s*$")
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass
class SkillsReport:
    """What ``export_skills`` wrote: the skill folders by name and how many behaviors each holds."""

    skills: dict[str, int] = field(default_factory=dict)

    @property
    def behaviors(self) -> int:
        return sum(self.skills.values())


def skill_name(topic: str | None) -> str:
    """The skill name of a topic: ``behaviors-<slug>`` within the spec's 64 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", (topic or "general").lower()).strip("-") or "general"
    return f"behaviors-{slug}"[:MAX_NAME].rstrip("-")


def _description(topic: str | None, namespace: str, count: int) -> str:
    about = f"on {topic}" if topic else "for any task"
    text = (
        f"{count} behaviors {about} from the behavior-memory handbook of namespace {namespace}: short, "
        "reusable strategies learned from earlier tasks. Use them while solving such tasks, and cite a "
        "behavior by its name whenever you use it."
    )
    return text[:MAX_DESCRIPTION]


def _skill_text(name: str, topic: str | None, namespace: str, behaviors: list[Behavior]) -> str:
    # JSON strings are valid YAML scalars: a topic with quotes or colons cannot break the front matter.
    front = [
        "---",
        f"name: {name}",
        f"description: {json.dumps(_description(topic, namespace, len(behaviors)), ensure_ascii=False)}",
        "metadata:",
        f"  source: {_SOURCE}",
        f"  namespace: {json.dumps(namespace)}",
        *([f"  topic: {json.dumps(topic, ensure_ascii=False)}"] if topic else []),
        "---",
    ]
    intro = load_prompt("bci_block").split("\n\n")[0].strip()  # the paper's definition of a behavior
    lines = [f"- {behavior_line(b)}" for b in behaviors]
    title = topic or "general"
    return "\n".join([*front, "", f"# Behaviors: {title}", "", intro, "", *lines, ""])


def _write_atomically(path: Path, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _ours(path: Path) -> bool:
    """Whether an existing SKILL.md was written by an export (so it may be replaced)."""
    try:
        front = _front_matter(path.read_text(encoding="utf-8")[:MAX_SKILL_BYTES])[0]
    except (OSError, UnicodeDecodeError, InvalidInputError):
        return False
    metadata = front.get("metadata")
    return isinstance(metadata, dict) and metadata.get("source") == _SOURCE


def export_skills(
    handbook: Handbook, directory: str | Path, *, namespace: str | None = None, force: bool = False
) -> SkillsReport:
    """Write the namespace's active behaviors as one skill folder per topic under ``directory``.

    ``directory`` is created when missing (its parent must exist). A ``SKILL.md`` already there
    is replaced only when an export wrote it, or with ``force``; each file is written whole.
    """
    target = pick_namespace(namespace, handbook.namespace)
    root = Path(directory).expanduser()
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"cannot export skills to {directory}: it is a file; nothing was written")
    if not root.parent.is_dir():
        raise InvalidInputError(f"cannot export skills to {directory}: its folder does not exist")
    groups: dict[str, tuple[str | None, list[Behavior]]] = {}
    for behavior in handbook.list(namespace=target, status=BehaviorStatus.ACTIVE):
        name = skill_name(behavior.topic)
        topic, members = groups.setdefault(name, (behavior.topic, []))
        members.append(behavior)
    for name in groups:
        existing = root / name / SKILL_FILE
        if existing.exists() and not force and not _ours(existing):
            raise InvalidInputError(
                f"{existing} exists and was not written by an export; nothing was written (pass --force to replace it)"
            )
    report = SkillsReport()
    root.mkdir(exist_ok=True)
    for name, (topic, members) in sorted(groups.items()):
        (root / name).mkdir(exist_ok=True)
        _write_atomically(root / name / SKILL_FILE, _skill_text(name, topic, target, members))
        report.skills[name] = len(members)
    return report


def _front_matter(text: str) -> tuple[dict[str, Any], str, int]:
    """(front matter, body, the body's first line number) of a SKILL.md; ``InvalidInputError`` if malformed."""
    import yaml

    match = _FRONT.match(text.lstrip("\ufeff"))
    if match is None:
        raise InvalidInputError("does not start with YAML front matter (---, name, description, ---)")
    try:
        front = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"its front matter is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(front, dict):
        raise InvalidInputError("its front matter is not a mapping")
    return front, text[match.end() :], match.group(0).count("\n") + 1


def _skill_files(source: Path) -> list[Path]:
    if (source / SKILL_FILE).is_file():
        return [source / SKILL_FILE]
    return sorted(p / SKILL_FILE for p in source.iterdir() if (p / SKILL_FILE).is_file())


def _read_skill(path: Path, errors: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    """The behavior records of one SKILL.md as (where, record); problems go to ``errors``."""
    if path.stat().st_size > MAX_SKILL_BYTES:
        errors.append((str(path), f"larger than {MAX_SKILL_BYTES} bytes; not read"))
        return []
    try:
        front, body, first = _front_matter(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        errors.append((str(path), "not UTF-8"))
        return []
    except InvalidInputError as exc:
        errors.append((str(path), str(exc)))
        return []
    name, description = front.get("name"), front.get("description")
    if not isinstance(name, str) or len(name) > MAX_NAME or not _NAME.match(name):
        errors.append((str(path), f"name {name!r} is not a skill name (1-64 lower-case letters, digits, hyphens)"))
        return []
    if name != path.parent.name:
        errors.append((str(path), f"name {name!r} is not its folder's name {path.parent.name!r}"))
        return []
    if not isinstance(description, str) or not description.strip() or len(description) > MAX_DESCRIPTION:
        errors.append((str(path), "description must be 1 to 1024 characters"))
        return []
    found = front.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    topic = metadata.get("topic") if isinstance(metadata.get("topic"), str) else None
    if topic is None and name.startswith("behaviors-") and name != "behaviors-general":
        topic = name.removeprefix("behaviors-")
    records = []
    for offset, line in enumerate(body.splitlines()):
        match = _LINE.match(line)
        if match:
            record = {"name": match.group(1), "instruction": match.group(2), "topic": topic}
            records.append((f"{path}:{first + offset}", record))
    return records


def import_skills(
    handbook: Handbook, source: str | Path, *, namespace: str | None = None, replace: bool = False
) -> tuple[ImportReport, list[tuple[str, str]]]:
    """Import the behaviors of a skill folder, or of every skill folder in ``source``, as candidates.

    Returns the JSONL import's report, whose line numbers count the behaviors read in order, and
    a list of (where, reason) for every problem: a malformed SKILL.md, a bad behavior line, one
    skipped or quarantined. Nothing is trusted: every behavior is a candidate through the guard.
    """
    from .handbook_jsonl import import_jsonl

    root = Path(source).expanduser()
    if not root.is_dir():
        raise InvalidInputError(f"cannot import skills from {source}: not a folder")
    problems: list[tuple[str, str]] = []
    records: list[tuple[str, dict[str, Any]]] = []
    for path in _skill_files(root):
        records.extend(_read_skill(path, problems))
    data = "".join(json.dumps(record, ensure_ascii=False) + "\n" for _, record in records).encode("utf-8")
    report = import_jsonl(
        handbook, io.BytesIO(data), namespace=namespace, replace=replace, trust=False, origin=f"skills {root.name}"
    )
    where = [w for w, _ in records]
    for kind, entries in (
        ("skipped", report.skipped),
        ("rejected", report.errors),
        ("quarantined", report.quarantined),
    ):
        problems.extend((where[number - 1], f"{kind}: {reason}") for number, reason in entries)
    return report, problems
