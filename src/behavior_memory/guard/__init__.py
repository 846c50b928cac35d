"""The guard: what keeps poisoned or junk behaviors out of the handbook.

``Guard(config).check(name, instruction, topic=...)`` returns a ``GuardVerdict`` (``ok``, the
deciding ``rule`` and its ``evidence``, every ``violations``). It is pure and deterministic, and
costs well under a millisecond per behavior (``make bench-guard``). The handbook (add, edit,
import) and the curator (reflection) quarantine what it refuses; ``--force`` overrides, recorded.

The rules, tried in this order (the first that fires decides):

- ``injection``: "ignore previous instructions", "you are now", "developer mode", jailbreaks,
  role tags (``system:``, ``<|im_start|>``, ``[INST]``), the block's delimiters (``</behaviors>``,
  the frame's own sentences), covert orders ("without telling the user").
- ``exfiltration``: sending, posting, uploading or leaking keys, credentials or the user's data,
  anything sent to a URL or address, ``curl``/``wget``, webhooks.
- ``secret``: key shapes (``sk-...``, ``AKIA...``, ``ghp_...``, ``xox...``, private-key headers,
  JWTs), "password is ...", long high-entropy tokens.
- ``url``: URLs, bare hosts (``evil.example``, ``x.com``, ``evil dot com``), IP addresses,
  ``hxxp``; hosts in ``GuardConfig.allowed_hosts`` pass.
- ``email``: e-mail addresses (``a@b.c``, ``a [at] b [dot] c``, ``mailto:``).
- ``control_chars``: control or invisible characters in the raw text (ANSI escapes, zero-width,
  bidi controls, tag characters, line breaks).
- ``placeholder``: template text a small model copies (``behavior_example``, ``behavior_name``,
  "insert ... here", ``{{...}}``, ``<description>``, "lorem ipsum", TODO).
- ``self_reference``: a behavior about itself (its own name inside it, "this is a behavior", no
  words beyond its name's).
- ``repetition``: one word over 30% of the words, a looping phrase, a character run.
- ``length``: an instruction under 4 or over 80 words or 400 characters, a name over 64 characters.

Content rules read the text as a model would: invisible characters removed, NFKC-style folding,
Cyrillic and Greek look-alikes mapped to Latin, case-folded, and a decoded view where
percent-escapes, HTML entities, ``\\xNN`` escapes and base64 or hex blobs are undone
(``normalize``). ``GuardConfig`` picks the rules (``rules``, ``disabled_rules``), adds
``extra_patterns`` as named rules, and lists ``allowed_hosts``.

``Judge`` (``judge``) adds an optional model verdict (``useful``, ``useless``, ``unsafe``) after the
rules, configured by ``JudgeConfig``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import load_export

if TYPE_CHECKING:
    from .guard import Guard, GuardConfig, GuardVerdict, Violation
    from .judge import Judge, JudgeAnswer, JudgeConfig
    from .rules import RULE_NAMES

__all__ = [
    "RULE_NAMES",
    "Guard",
    "GuardConfig",
    "GuardVerdict",
    "Judge",
    "JudgeAnswer",
    "JudgeConfig",
    "Violation",
]

# The names load on first use: the renderer imports ``guard.normalize`` on every prompt path, and
# that must not compile the rules' patterns or build the config models.
_MODULES = {
    "RULE_NAMES": ".rules",
    "Guard": ".guard",
    "GuardConfig": ".guard",
    "GuardVerdict": ".guard",
    "Judge": ".judge",
    "JudgeAnswer": ".judge",
    "JudgeConfig": ".judge",
    "Violation": ".guard",
}


def __getattr__(name: str) -> object:
    return load_export(__name__, _MODULES, name)
