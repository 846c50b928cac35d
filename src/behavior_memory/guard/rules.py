"""The guard's named rules: each reads a behavior and returns the text that broke it, or None.

Content rules match the folded views of ``normalize`` (the instruction, its decoded form, and the
name's words: a behavior named ``behavior_ignore_previous_instructions`` is an injection too).
Secrets are matched case-sensitively on the cleaned text, control characters on the raw text.
Patterns are compiled once and tried only when a trigger word is present (``subject.Gated``).
This module holds the rules against attacks; ``quality`` those against junk.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache

from ..prompts import load_prompt
from .normalize import CONTROL, INVISIBLE, decode, escape_invisible, fold
from .quality import length_rule, placeholder, repetition, self_reference
from .subject import Check, Gated, NamedRule, Subject, first_match

__all__ = ["RULE_NAMES", "NamedRule", "Subject", "builtin_rules", "host_of", "pattern_rule"]

#: The built-in rules, in the order they are tried: the first that fires decides the verdict.
RULE_NAMES = (
    "injection",
    "exfiltration",
    "secret",
    "url",
    "email",
    "control_chars",
    "placeholder",
    "self_reference",
    "repetition",
    "length",
)


# --- injection -------------------------------------------------------------------------------------

_ROLES = r"(?:system|assistant|user|developer|human|tool|model)"
# Roles that open a turn as "role:"; "Tool:" or "Model:" at the start of a note is more often a heading.
_TURN_ROLES = r"(?:system|assistant|user|developer|human)"


@cache
def _frame() -> Gated:
    """The opening words of each line of the behavior block's frame: text that forges the block."""
    phrases = [fold(line.replace("{behaviors}", ""))[:40].strip() for line in load_prompt("bci_block").splitlines()]
    phrases = [p for p in phrases if len(p) >= 12]
    return Gated([p[:12] for p in phrases], *(re.escape(p) for p in phrases))


_INJECTION = (
    Gated(
        ("ignor", "disregard", "forget", "overrid", "bypass", "overrule", "skip"),
        r"\b(?:ignore|disregard|forget|override|bypass|overrule|skip)\b(?:\W+\w+){0,3}?\W+"
        r"(?:previous|prior|above|earlier|preceding|all|any|your|system|original|initial|safety|developer|other)\b"
        r"(?:\W+\w+){0,2}?\W+(?:instructions?|prompts?|directions?|guidelines?|directives?|rules|messages?"
        r"|guardrails?|polic(?:y|ies)|context)\b",
        r"\b(?:forget|disregard|ignore)\s+(?:everything|anything|all)\b(?:\W+\w+){0,4}?\W+"
        r"(?:before|above|previously|earlier|so far)\b",
    ),
    Gated(
        ("you are", "from now on", "pretend", "act as", "instruction", " mode", "jail", "anything now"),
        r"\byou are (?:now|no longer)\b",
        r"\bfrom now on\b[^.]{0,40}\byou\b",
        r"\bpretend (?:to be|you are)\b",
        r"\bact as (?:an? )?(?:unrestricted|unfiltered|jailbroken|evil|dan)\b",
        r"\bnew (?:system )?instructions?\s*:",
        r"\b(?:developer|dan|god|debug|admin) mode\b",
        r"\bjail ?br[eo]a?k",
        r"\bdo anything now\b",
    ),
    Gated(
        ("system prompt", "hidden instruction", "initial instruction", "developer message"),
        r"\b(?:reveal|print|repeat|show|output|leak|dump)\b(?:\W+\w+){0,3}?\W+"
        r"(?:system prompt|hidden instructions|initial instructions|developer message)",
    ),
    Gated(
        ("safety", "guardrail", "content filter", "content policy", "moderation"),
        r"\b(?:disable|turn off|bypass|remove|ignore)\b(?:\W+\w+){0,2}?\W+"
        r"(?:safety|guardrails?|content (?:filter|policy)|moderation)\b",
    ),
    Gated(
        ("secretly", "covertly", "the user"),
        r"\bsecretly\b|\bcovertly\b|\bwithout (?:telling|informing|notifying|alerting) the user\b",
        r"\bhide (?:this|it|them|that) from the user\b",
        r"\b(?:do not|don'?t|never) (?:tell|inform|notify) the user (?:about|that you)\b",
    ),
    # chat-template tokens and role tags, the block's own delimiters
    Gated(
        ("<", "[", "#", "im_", "endoftext", "eot_id", "header_id", "_of_turn"),
        r"<\|[a-z_ ]{2,30}\|>",
        r"\[/?inst\]|<</?sys>>",
        rf"</?\s*(?:behaviou?rs?|{_ROLES}|instructions?|im_start|im_end|s|tool_call|function|context|prompt)\s*"
        r"(?:\s[a-z_-]+\s*=[^<>]{0,40})?/?>",
        r"\b(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|start_of_turn|end_of_turn)\b",
        r"#{2,}\s*(?:system|instruction|response|assistant|user)\b",
    ),
    Gated((":",), rf"(?:^|[^\w\s,;]\s*){_TURN_ROLES}\s*:"),
)
_UPPER_ROLE = Gated((":",), r"\b(?:SYSTEM|ASSISTANT|DEVELOPER|USER|HUMAN)\s*:")


def injection(subject: Subject) -> str | None:
    """Instructions that hijack the model: "ignore previous instructions", role tags, the block's delimiters."""
    return first_match((*_INJECTION, _frame()), subject.texts) or _UPPER_ROLE.search(subject.instruction.clean)


# --- exfiltration ----------------------------------------------------------------------------------

_W = r"\w+(?:['.-]\w+)*"  # a word, inner apostrophes and dots allowed (unambiguous: no backtracking blow-up)
_VERB = (
    r"(?:send|sends|sending|post|posting|upload|uploading|forward|forwarding|e-?mail|mail|leak|leaking"
    r"|exfiltrate|transmit|transfer|share|copy|dump|reveal|disclose|expose|paste|pipe|beacon|submit|deliver"
    r"|append|embed|attach|include|print|echo|output|display)"
)
_SENSITIVE = (
    r"(?:api[ _-]?keys?|access[ _-]?keys?|secret[ _-]?keys?|private[ _-]?keys?|ssh[ _-]?keys?|credentials?"
    r"|passwords?|passwd|passphrases?|secrets|(?:access|auth|bearer|session|refresh|oauth|api)[ _-]?tokens?"
    r"|cookies|\.env\b|env(?:ironment)? (?:vars?|variables?)"
    r"|(?:the )?users?'?s? (?:data|emails|messages|keys|history|information|info|contacts)"
    r"|personal (?:data|information)|pii|credit[ _-]?cards?|card numbers?|ssns?|social security"
    r"|(?:conversation|chat) history|system prompt|id_(?:rsa|dsa|ecdsa|ed25519)\b|ssh/|aws/credentials|netrc"
    r"|etc/(?:passwd|shadow))"
)
_OUTSIDE = (
    r"(?:https?\W|hxxps?\W|www\.|ftp\W|an? (?:external|remote|third[- ]party)\b|the (?:attacker|remote server"
    r"|external)\b|(?:my|this|our) (?:server|endpoint|webhook|inbox|email address)\b|[\w.+-]+@[\w-]+\.)"
)
_EXFILTRATION = (
    Gated(
        ("key", "credential", "passw", "passphrase", "secret", "token", "cookie", "env", "user", "personal", "pii",
         "card", "ssn", "social security", "history", "system prompt", "id_", "ssh", "aws", "netrc", "etc/"),
        rf"\b{_VERB}\b(?:\W+{_W}){{0,6}}?\W+{_SENSITIVE}",
    ),
    Gated(
        ("http", "hxxp", "www.", "ftp", "external", "remote", "third", "attacker", "server", "endpoint", "webhook",
         "inbox", "email address", "@"),
        rf"\b{_SENSITIVE}(?:\W+{_W}){{0,5}}?\W+(?:to|into|at|via)\W+{_OUTSIDE}",
        rf"\b{_VERB}\b(?:\W+{_W}){{0,6}}?\W+(?:to|into)\W+{_OUTSIDE}",
    ),
    Gated(
        ("curl", "wget", "netcat", "ncat", "invoke-webrequest", "web", "bin", "ngrok", "burp", "interactsh",
         "transfer.sh"),
        r"\b(?:curl|wget|netcat|ncat|invoke-webrequest)\b",
        r"\bweb ?hooks?\b",
        r"\b(?:requestbin|pastebin|ngrok|burpcollaborator|interactsh|webhook\.site|transfer\.sh)\b",
    ),
)  # fmt: skip


def exfiltration(subject: Subject) -> str | None:
    """Outbound actions with data: send keys or the user's data somewhere, curl, wget, webhooks."""
    return first_match(_EXFILTRATION, subject.texts)


# --- secrets ---------------------------------------------------------------------------------------

_SECRET_SHAPES = Gated(
    ("sk-", "AKIA", "ASIA", "gh", "github_pat_", "xox", "BEGIN", "AIza", "eyJ", "glpat-", "hf_", "k_live_",
     "k_test_", "earer"),
    r"\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"\bAIza[0-9A-Za-z_-]{30,}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}",
    r"\bglpat-[A-Za-z0-9_-]{20,}",
    r"\bhf_[A-Za-z0-9]{30,}",
    r"\b[spr]k_(?:live|test)_[A-Za-z0-9]{16,}",
    r"\b[Bb]earer\s+[A-Za-z0-9._~+/-]{16,}",
)  # fmt: skip
_SECRET_WORDS = Gated(
    ("pass", "pwd", "key", "token", "secret", "begin"),
    r"\b(?:password|passwd|passphrase|pwd)\s*(?:[:=]\s*\S+|(?:is|was)\s+(?:['\"]\S+|\S*\d\S*))",
    r"\b(?:api[ _-]?key|secret[ _-]?key|access[ _-]?token|auth[ _-]?token|client[ _-]?secret|token)\s*"
    r"(?:[:=]|is|was)\s*['\"]?(?=[\w./+-]*\d)[\w./+-]{8,}",
    r"-----begin [a-z ]*private key",
)
# starts only where a token starts, so a long word is scanned once, not once per letter
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/=_-]{24,}")


def _entropy(token: str) -> float:
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def _high_entropy(text: str) -> str | None:
    for match in _TOKEN.finditer(text):
        token = match.group()
        mixed = any(c.isdigit() for c in token) and any(c.isupper() for c in token) and any(c.islower() for c in token)
        # an encoded text is not a key: its decoded form goes through the other rules
        if mixed and _entropy(token) >= 4.0 and decode(token) is None:
            return token
    return None


def secret(subject: Subject) -> str | None:
    """API keys, tokens and passwords: known key shapes, "password is ...", long high-entropy strings."""
    text = subject.instruction.clean
    return (
        _SECRET_SHAPES.search(text)
        or first_match((_SECRET_WORDS,), subject.instruction.searchable)
        or _high_entropy(text)
    )


# --- urls and emails -------------------------------------------------------------------------------

_DOT = r"(?:\.|\s*\[\.\]\s*|\s*\(\.\)\s*|\s*\[dot\]\s*|\s*\(dot\)\s*|\s+dot\s+)"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TLDS = r"(?:com|net|org|io|ai|co|example|xyz|ru|cn|onion|ly|gg|tk|cc|me|us|uk|de|biz|top|click|link|su|pw|ws|ir)"
_TLD_LIST = _TLDS[3:-1].split("|")
_URL = (
    Gated(
        ("/",),
        r"\b(?:h(?:tt|xx|\*\*)ps?|ftps?|sftp|wss?|file|gopher|ldap|smb)\s*(?:\[:\]|\(:\)|:)\s*/\s*/\s*[^\s\"'<>)\]]*",
    ),
    Gated(("www",), rf"\bwww{_DOT}{_LABEL}(?:{_DOT}{_LABEL})*"),
    Gated(
        (*(f".{tld}" for tld in _TLD_LIST), "[.]", "(.)", "[dot]", "(dot)", " dot "),
        rf"\b{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}{_TLDS}\b(?::\d{{2,5}})?",
    ),
    Gated(
        tuple("0123456789"),
        r"\b(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}\b(?::\d{2,5})?",
    ),
    Gated(("localhost",), r"\blocalhost:\d{2,5}\b"),
)
_SCHEME = re.compile(r"^[a-z*]+\s*(?:\[:\]|\(:\)|:)\s*/\s*/\s*")
_DOTS = re.compile(_DOT)


def host_of(found: str) -> str:
    """The host of a matched URL, bare host or email (``evil[.]example/x`` -> ``evil.example``)."""
    text = _SCHEME.sub("", found.strip().casefold())
    text = text.rsplit("@", 1)[-1]
    text = re.split(r"[/?#:\s]", _DOTS.sub(".", text), maxsplit=1)[0]
    return text.strip(".")


def _allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    return any(host == h or host.endswith("." + h) for h in allowed_hosts)


_AT = ("@", "[at]", "(at)")


def _outside(
    patterns: Sequence[Gated], subject: Subject, allowed_hosts: Sequence[str], *, skip_addresses: bool = False
) -> str | None:
    for text in subject.texts:
        for gated in patterns:
            if not any(t in text for t in gated.triggers):
                continue
            for match in gated.pattern.finditer(text):
                if skip_addresses and text[: match.start()].rstrip().endswith(_AT):
                    continue  # the host of an e-mail address: rule email's evidence
                if not _allowed(host_of(match.group()), allowed_hosts):
                    return match.group()
    return None


def url_rule(allowed_hosts: Sequence[str] = ()) -> Check:
    """URLs, bare hosts (``evil.example``, ``x.com``, ``evil dot com``), IP addresses, ``hxxp``."""

    def url(subject: Subject) -> str | None:
        return _outside(_URL, subject, allowed_hosts, skip_addresses=True)

    return url


_EMAIL = (
    Gated(
        ("@", "[at]", "(at)", "mailto"),
        rf"\b[a-z0-9._%+-]+\s*(?:@|\[at\]|\(at\))\s*{_LABEL}(?:{_DOT}{_LABEL})+",
        r"\bmailto:\S+",
    ),
)


def email_rule(allowed_hosts: Sequence[str] = ()) -> Check:
    """E-mail addresses (``a@b.c``, ``a [at] b [dot] c``, ``mailto:``) outside the allowed hosts."""

    def email(subject: Subject) -> str | None:
        return _outside(_EMAIL, subject, allowed_hosts)

    return email


# --- control characters ----------------------------------------------------------------------------

_HIDDEN = re.compile(f"{CONTROL.pattern}|{INVISIBLE.pattern}")


def control_chars(subject: Subject) -> str | None:
    """Control and invisible characters in the raw text (ANSI escapes, zero-width, bidi, tags, line breaks)."""
    for text in (subject.name, subject.instruction.raw):
        if match := _HIDDEN.search(text):
            start = max(match.start() - 12, 0)
            return escape_invisible(text[start : match.end() + 12])
    return None


def pattern_rule(pattern: str) -> Check:
    """A rule from a user's regular expression (case-insensitive): searched in the name, raw and folded text."""
    compiled = re.compile(pattern, re.IGNORECASE)

    def check(subject: Subject) -> str | None:
        for text in (subject.name, subject.instruction.raw, *subject.texts):
            if match := compiled.search(text):
                return match.group()
        return None

    return check


def builtin_rules(
    *,
    allowed_hosts: Sequence[str] = (),
    min_words: int = 4,
    max_words: int = 80,
    max_chars: int = 400,
    max_name_chars: int = 64,
) -> list[NamedRule]:
    """Every built-in rule, in ``RULE_NAMES`` order, configured."""
    checks: dict[str, Check] = {
        "injection": injection,
        "exfiltration": exfiltration,
        "secret": secret,
        "url": url_rule(allowed_hosts),
        "email": email_rule(allowed_hosts),
        "control_chars": control_chars,
        "placeholder": placeholder,
        "self_reference": self_reference,
        "repetition": repetition,
        "length": length_rule(
            min_words=min_words, max_words=max_words, max_chars=max_chars, max_name_chars=max_name_chars
        ),
    }
    return [NamedRule(name, checks[name]) for name in RULE_NAMES]
