"""The two handlers ``instrument`` adds to LlamaIndex's root dispatcher, and the run tags.

The dispatcher calls them for every event and span in the process and swallows what they raise;
they forward to a ``RunObserver`` (``LlamaIndexInstrumentation``) and log its errors instead.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

from ...recording.namespaces import task_namespace

__all__ = [
    "LLAMAINDEX_RUN_TAG",
    "NAMESPACE_TAG",
    "RUN_TAG",
    "TOPIC_TAG",
    "USER_TAG",
    "BehaviorMemoryEventHandler",
    "BehaviorMemorySpanHandler",
    "RunObserver",
    "run_key",
    "tag_namespace",
]

log = logging.getLogger(__name__)

#: Instrument tag naming the run (set by ``wrap``); the workflow runtime copies it into every step.
RUN_TAG = "behavior_memory.run"
#: Tags that file a run under another namespace or topic than the memory's default.
NAMESPACE_TAG = "behavior_memory.namespace"
TOPIC_TAG = "behavior_memory.topic"
#: Tag naming the user a run serves: its namespace is the default one plus ``/<user_id>``.
USER_TAG = "behavior_memory.user_id"
LLAMAINDEX_RUN_TAG = "llamaindex.run_id"


def run_key(tags: dict[str, Any] | None) -> str | None:
    """The run a tagged event or span belongs to: ours first, else LlamaIndex's run id."""
    if not tags:
        return None
    key = tags.get(RUN_TAG) or tags.get(LLAMAINDEX_RUN_TAG)
    return str(key) if key else None


def tag_namespace(base: str, tags: dict[str, Any] | None) -> str:
    """The namespace of a run from its tags, by the core's rule (``NAMESPACE_TAG``, else base/``USER_TAG``)."""
    tags = tags or {}
    return task_namespace(base, {"namespace": tags.get(NAMESPACE_TAG), "user_id": tags.get(USER_TAG)})


class RunObserver(Protocol):
    """What the handlers forward to."""

    def on_event(self, event: BaseEvent) -> None: ...

    def on_span_enter(
        self, id_: str, bound_args: Any, instance: Any, parent_id: str | None, tags: dict[str, Any] | None
    ) -> SimpleSpan | None: ...

    def on_span_exit(self, id_: str, result: Any, err: BaseException | None) -> None: ...


class BehaviorMemoryEventHandler(BaseEventHandler):
    """Forwards every instrumentation event to a ``RunObserver``; its errors are logged, never raised."""

    _observer: RunObserver = PrivateAttr()

    @classmethod
    def for_observer(cls, observer: RunObserver) -> BehaviorMemoryEventHandler:
        handler = cls()
        handler._observer = observer
        return handler

    @classmethod
    def class_name(cls) -> str:
        return "BehaviorMemoryEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        try:
            self._observer.on_event(event)
        except Exception:
            log.exception("behavior-memory could not record a LlamaIndex event")


class BehaviorMemorySpanHandler(BaseSpanHandler[SimpleSpan]):
    """Forwards span enter/exit/drop to a ``RunObserver``, which picks the spans worth keeping open."""

    _observer: RunObserver = PrivateAttr()

    @classmethod
    def for_observer(cls, observer: RunObserver) -> BehaviorMemorySpanHandler:
        handler = cls()
        handler._observer = observer
        return handler

    @classmethod
    def class_name(cls) -> str:
        return "BehaviorMemorySpanHandler"

    def new_span(
        self,
        id_: str,
        bound_args: Any,
        instance: Any = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SimpleSpan | None:
        try:
            return self._observer.on_span_enter(id_, bound_args, instance, parent_span_id, tags)
        except Exception:
            log.exception("behavior-memory could not open a LlamaIndex span")
            return None

    def prepare_to_exit_span(
        self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> SimpleSpan | None:
        return self._close(id_, result, None)

    def prepare_to_drop_span(
        self, id_: str, bound_args: Any, instance: Any = None, err: BaseException | None = None, **kwargs: Any
    ) -> SimpleSpan | None:
        return self._close(id_, None, err)

    def _close(self, id_: str, result: Any, err: BaseException | None) -> SimpleSpan | None:
        try:
            self._observer.on_span_exit(id_, result, err)
        except Exception:
            log.exception("behavior-memory could not close a LlamaIndex span")
        return self.open_spans.get(id_)
