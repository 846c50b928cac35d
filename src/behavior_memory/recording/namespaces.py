"""Which namespace a task belongs to: the same rule for every integration.

``namespace`` (from the first source that has one) is used as given; otherwise ``user_id`` is
appended to the base (``acme/bot`` + ``alice`` -> ``acme/bot/alice``), so one deployment serves
many users without sharing their behaviors; otherwise the base.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError
from ..types import validate_namespace

__all__ = ["task_namespace"]


def _lookup(source: Any, key: str) -> Any:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def task_namespace(base: str, *sources: Any) -> str:
    """The namespace of one task, from ``sources`` (mappings or objects, first match wins).

    A LangChain runtime context and config metadata, LlamaIndex instrument tags or ``wrap`` options
    are all sources; a ``user_id`` that cannot be a namespace segment is an ``InvalidInputError``.
    """
    for source in sources:
        explicit = _lookup(source, "namespace")
        if explicit:
            return validate_namespace(str(explicit))
    for source in sources:
        user = _lookup(source, "user_id")
        if user is not None and str(user) != "":
            try:
                return validate_namespace(f"{base}/{user}")
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"user_id {user!r} cannot be a namespace segment: use letters, digits and _.:@+- only"
                ) from exc
    return base
