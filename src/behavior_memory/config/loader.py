"""Load a YAML file into a pydantic model, with errors that name the key and the line.

The pipeline: read (UTF-8) -> compose YAML nodes (keeping every key's line) -> interpolate
``${VAR}`` / ``${VAR:-default}`` (``$${...}`` is a literal) -> apply ``BMEM_SECTION__KEY=value``
env overrides -> ``model_validate``. Every failure is one :class:`ConfigError`.

Loading is bounded: a file of more than ``MAX_CONFIG_CHARS``, or one that composes to or expands
through its aliases to more than ``MAX_CONFIG_VALUES`` values, is refused before anything is built.
Aliases share one node, so ten lines of ``&a [*b, *b, ...]`` ("billion laughs") compose in
microseconds and would expand to 10^9 values; the expanded size is counted on the shared nodes.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, cast, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from behavior_memory.errors import ConfigError

__all__ = ["MAX_CONFIG_CHARS", "MAX_CONFIG_VALUES", "json_schema", "load_model", "load_model_from_text"]

#: Longest configuration read, in characters; a real one is a few kilobytes.
MAX_CONFIG_CHARS = 256_000
#: Most values (keys, items, scalars) a configuration may hold once its aliases are expanded.
MAX_CONFIG_VALUES = 10_000

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

_MAP_TAG, _SEQ_TAG, _STR_TAG, _MERGE_TAG = (f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "merge"))
_VAR = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET = re.compile(r"key|secret|password|token|dsn", re.IGNORECASE)


class _Loader(yaml.SafeLoader):
    """A private SafeLoader (the global resolvers of ``yaml.SafeLoader`` stay untouched) that stops
    composing past ``MAX_CONFIG_VALUES`` nodes, so even a large flat file cannot fill memory."""

    composed = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.composed += 1
        if self.composed > MAX_CONFIG_VALUES:
            raise _TooLarge(f"the YAML holds more than {MAX_CONFIG_VALUES:,} values", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        return super().compose_node(parent, index)


class _TooLarge(Exception):
    """Raised inside composing or counting; becomes a ConfigError naming the line."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a tree that expands to more than ``MAX_CONFIG_VALUES`` values through its aliases.

    Each node's expanded size is counted once and reused wherever an alias repeats it, so the
    check costs time linear in the file however far it would expand. ``<<`` merges are counted
    too: merging copies the merged pairs, and a chain of merges grows exactly like aliases do.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:  # an alias inside what it names: the walker reports it with its key
            return 1
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        active.discard(key)
        if total > MAX_CONFIG_VALUES:
            raise _TooLarge(
                f"the YAML expands through its aliases to more than {MAX_CONFIG_VALUES:,} values "
                "(an alias bomb?); a configuration needs a few hundred",
                node.start_mark,
            )
        sizes[key] = total
        return total

    size(root)


class _Walker:
    """Turns a node tree into plain data and records where each key and item sits."""

    def __init__(self, loader: _Loader, source: str, env: Mapping[str, str]) -> None:
        self.loader, self.source, self.env = loader, source, env
        self.lines: dict[Loc, int] = {}  # 1-based line of each key (or sequence item)
        self._stack: set[int] = set()

    def walk(self, node: yaml.Node, loc: Loc) -> Any:
        if id(node) in self._stack:  # an alias that contains itself would never end
            raise self._error("recursive YAML alias", loc, node)
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
                return self._mapping(node, loc)
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
                self.lines.update({(*loc, i): item.start_mark.line + 1 for i, item in enumerate(node.value)})
                return [self.walk(item, (*loc, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG:
                return self._string(node, loc)
            return self.loader.construct_object(node, deep=True)
        finally:
            self._stack.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:  # before merging: `<<: *base` may legitimately repeat keys
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._error("mapping keys must be plain scalars", loc, key_node)
            if key_node.tag == _MERGE_TAG:
                continue
            key, line = self.loader.construct_object(key_node), key_node.start_mark.line + 1
            if key in seen:
                msg = f"duplicate key (first at line {seen[key]}, again at line {line})"
                raise self._error(msg, (*loc, key), key_node)
            seen[key] = line
        self.loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node)
            self.lines[(*loc, key)] = key_node.start_mark.line + 1
            result[key] = self.walk(value_node, (*loc, key))
        return result

    def _string(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        text = str(node.value)

        def substitute(match: re.Match[str]) -> str:
            escaped, name, default = match.groups()
            if escaped:
                return match.group(0)[1:]
            value = self.env.get(name)
            if default is not None and not value:  # shell semantics: `:-` also replaces empty
                return str(default)
            if value is None:
                hint = f"write ${{{name}:-default}} to give a default"
                raise self._error(f"environment variable '{name}' is not set ({hint})", loc, node)
            return value

        result = _VAR.sub(substitute, text)
        # An unquoted `${K}` should behave as if its value were written there: `8` is an int.
        if result != text and node.style is None:
            return _scalar(result)
        return result

    def _error(self, message: str, loc: Loc, node: yaml.Node) -> ConfigError:
        return ConfigError(message, path=self.source, key=_dotted(loc) or None, line=node.start_mark.line + 1)


def load_model(
    model_cls: type[M], path: str | Path, *, env: Mapping[str, str] | None = None, env_prefix: str = "BMEM_"
) -> M:
    """Read the YAML file at ``path`` and return a validated ``model_cls``.

    ``env`` (default ``os.environ``) feeds ``${VAR}`` interpolation and the ``{env_prefix}SECTION__KEY``
    overrides; an empty ``env_prefix`` turns overrides off. Raises :class:`ConfigError` naming the
    file, the key and the line for anything wrong: unreadable file, bad YAML, unknown key, wrong type.
    """
    source = str(path)
    try:
        with Path(path).open("rb") as fh:
            # UTF-8 takes at most 4 bytes a character: read no more than could pass the check below.
            raw = fh.read(4 * MAX_CONFIG_CHARS + 1)
    except FileNotFoundError:
        raise ConfigError("config file not found", path=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", path=source) from None
    except PermissionError:
        raise ConfigError("permission denied reading the config file", path=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror or exc}", path=source) from exc
    if len(raw) > 4 * MAX_CONFIG_CHARS:
        raise ConfigError(f"the file is larger than {4 * MAX_CONFIG_CHARS:,} bytes: not a configuration", path=source)
    try:
        text = raw.decode("utf-8-sig")  # tolerate a BOM, as YAML does
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)", path=source, line=line
        ) from None
    return load_model_from_text(model_cls, text, source=source, env=env, env_prefix=env_prefix)


def load_model_from_text(
    model_cls: type[M],
    text: str,
    *,
    source: str = "<string>",
    env: Mapping[str, str] | None = None,
    env_prefix: str = "BMEM_",
) -> M:
    """Like :func:`load_model`, for YAML already in memory (tests, ``bmem config check -``).

    ``source`` is the name used in error messages, e.g. ``"<stdin>"``.
    """
    env = os.environ if env is None else env
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(
            f"the configuration is {len(text):,} characters; at most {MAX_CONFIG_CHARS:,} are read "
            "(is this the right file?)",
            path=source,
        )
    loader = _Loader(text)
    walker = _Walker(loader, source, env)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_expansion(root)
        data = {} if root is None else walker.walk(root, ())
    except _TooLarge as exc:
        raise ConfigError(str(exc), path=source, line=exc.line) from None
    except RecursionError:  # `[[[[...` thousands deep: the composer and the walker recurse
        raise ConfigError("the YAML is nested too deeply", path=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        col = f" (column {mark.column + 1})" if mark else ""
        raise ConfigError(f"invalid YAML: {problem}{col}", path=source, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=source) from None
    finally:
        loader.dispose()
    walker.lines[()] = root.start_mark.line + 1 if root is not None else 0  # 0: no line to name
    data = {} if data is None else data  # a lone `---` or `~` reads as "no settings", like an empty file
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} scalar"
        raise ConfigError(f"the top level must be a mapping, not {kind}", path=source, line=walker.lines[()])
    overrides = _apply_env(model_cls, data, env, env_prefix) if env_prefix else {}
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, source, walker.lines, overrides) from None


def json_schema(model_cls: type[BaseModel]) -> dict[str, Any]:
    """Return ``model_cls``'s JSON Schema (draft 2020-12) for editors such as yaml-language-server."""
    schema = model_cls.model_json_schema(mode="validation")
    title = schema.pop("title", model_cls.__name__)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}


def _scalar(text: str) -> Any:
    """Read ``text`` as a single YAML scalar: ``8`` -> int, ``true`` -> bool, ``a: b`` stays text."""
    loader = _Loader("")
    tag = loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    try:
        return loader.construct_object(yaml.ScalarNode(tag, text))
    except (yaml.YAMLError, ValueError):  # e.g. a timestamp-shaped `2024-13-45`
        return text
    finally:
        loader.dispose()


def _descend(ann: Any) -> Any:
    """The model class or ``dict[...]`` type an override may step into, else None."""
    origin = get_origin(ann)
    if origin in (Union, types.UnionType):
        return next((t for t in map(_descend, get_args(ann)) if t is not None), None)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    return ann if origin in (dict, Mapping) else None


def _apply_env(model_cls: type[BaseModel], data: dict[Any, Any], env: Mapping[str, str], prefix: str) -> dict[Loc, str]:
    """Write ``PREFIX_A__B=v`` into ``data['a']['b']``; return which env var set which key."""
    origins: dict[Loc, str] = {}
    top_level = {f.lower() for f in model_cls.model_fields} | {
        (f.alias or "").lower() for f in model_cls.model_fields.values() if f.alias
    }
    for name in sorted(n for n in env if n.startswith(prefix) and len(n) > len(prefix)):
        rest = name[len(prefix) :]
        # Only PREFIX_SECTION__KEY or an exact top-level key is an override; other PREFIX_ variables
        # (PREFIX_CACHE_DIR, PREFIX_API_KEY, PREFIX_TEST_...) are someone else's settings.
        if "__" not in rest and rest.lower() not in top_level:
            continue
        parts = rest.split("__")
        if not all(parts):
            raise ConfigError(f"environment variable {name} has an empty key part (stray '__')")
        target: Any = model_cls
        node, loc = data, cast(Loc, ())
        for i, part in enumerate(parts):
            key: str | None = None
            if isinstance(target, type) and issubclass(target, BaseModel):
                for fname, field in target.model_fields.items():
                    if part.lower() in (fname.lower(), (field.alias or "").lower()):
                        key, target = field.alias or fname, _descend(field.annotation)
                        break
            elif target is not None:  # dict[str, X]: any key, matched against what the file has
                key = next((k for k in node if str(k).lower() == part.lower()), part.lower())
                args = get_args(target)
                target = _descend(args[1]) if len(args) == 2 else None
            if key is None:
                is_model = isinstance(target, type) and issubclass(target, BaseModel)
                where = _dotted(loc) or "the top level"
                known = f"has: {', '.join(target.model_fields)}" if is_model else "has no sub-keys"
                raise ConfigError(
                    f"environment variable {name} names an unknown key ({where} {known})",
                    key=_dotted((*loc, *parts[i:])).lower(),
                )
            loc = (*loc, key)
            if i == len(parts) - 1:
                node[key] = _scalar(env[name])
            else:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
        origins[loc] = name
    return origins


def _validation_error(
    exc: ValidationError, source: str, lines: dict[Loc, int], overrides: dict[Loc, str]
) -> ConfigError:
    """Fold pydantic's errors into one ConfigError, one ``source:LINE: key 'a.b': msg`` line each."""
    problems: list[str] = []
    first: tuple[str | None, int | None] | None = None
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        # Union members add their tag to loc; keep the part that exists in the data.
        known = max(n for n in range(len(loc) + 1) if loc[:n] in lines or loc[:n] in overrides)
        shown = loc if err["type"] == "missing" else loc[:known] or loc
        line = lines.get(loc[:-1] if err["type"] == "missing" else loc[:known]) or None
        key = _dotted(shown)
        env_var = next((v for o, v in overrides.items() if shown[: len(o)] == o), None)
        where = f"env {env_var}" if env_var else f"{source}:{line}" if line else source
        msg = err["msg"]
        # Echo small scalar inputs only: a whole section could hold an api_key.
        if not isinstance(err["input"], dict | list) and err["type"] != "missing" and not _SECRET.search(key):
            shown_input = repr(err["input"])
            msg += f" (got {shown_input[:60]}{'...' if len(shown_input) > 60 else ''})"
        problems.append(f"{where}: key '{key}': {msg}" if key else f"{where}: {msg}")
        first = first or (key or None, line)
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    error = ConfigError(f"invalid configuration ({count}):\n  " + "\n  ".join(problems), path=source)
    if first:  # callers (and tests) can still read the first problem's key and line
        error.key, error.line = first
        error.data.update(key=first[0], line=first[1], problems=problems)
    return error


def _dotted(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
