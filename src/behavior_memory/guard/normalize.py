"""The views of a text the guard's rules read: raw, cleaned, folded, and decoded.

A poisoned behavior hides its words: ``ig\\u200bnore`` (a zero-width space inside), ``ignоre``
(a Cyrillic ``о``), ``ＩＧＮＯＲＥ`` (full-width), ``http%3A%2F%2Fevil.example`` (percent-encoded),
``aHR0cDovL2V2aWwuZXhhbXBsZQ==`` (base64). The rules match plain lower-case ASCII patterns against
a view where each of those reads as what a model would read:

- ``clean``: invisible characters removed, compatibility forms folded (NFKD), accents dropped,
  whitespace collapsed; case kept (secrets are case-sensitive);
- ``folded``: ``clean`` with Cyrillic and Greek look-alikes mapped to the Latin letters they
  imitate, then case-folded;
- ``decoded``: ``clean`` with percent-escapes, HTML entities, ``\\xNN`` escapes and obvious base64
  or hex blobs decoded, then folded like ``folded``; ``None`` when there was nothing to decode.

``strip_invisible`` and ``escape_invisible`` are shared with the renderer and the evidence text.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote

__all__ = [
    "CONTROL",
    "INVISIBLE",
    "TextViews",
    "decode",
    "escape_invisible",
    "fold",
    "strip_invisible",
    "views",
]

# Zero-width and joiner characters, bidi marks and overrides, invisible operators, the BOM, the soft
# hyphen, variation selectors, Hangul fillers and tag characters: none of them shows, all of them
# split a word for a pattern (and the bidi ones reorder what a reader sees).
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f]"
)
#: C0 and C1 controls (a tab excepted) and the Unicode line and paragraph separators.
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_OR_INVISIBLE = re.compile(f"{CONTROL.pattern}|{INVISIBLE.pattern}")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")

# Letters of other scripts drawn like Latin ones (Unicode's confusables, the Cyrillic and Greek part).
# Mapped before case-folding: upper-case Greek Eta looks like H, its lower case like n.
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic, upper case
        "А": "A", "В": "B", "Е": "E", "Ё": "E", "З": "3", "Ѕ": "S", "І": "I", "Ї": "I", "Ј": "J",
        "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X",
        "Ү": "Y", "Һ": "H", "Ԛ": "Q", "Ԝ": "W", "Ӏ": "I",
        # Cyrillic, lower case
        "а": "a", "в": "b", "г": "r", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "ѕ": "s", "і": "i",
        "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y", "һ": "h", "ɡ": "g",
        "ɑ": "a",
        # Greek, upper case
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
        "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        # Greek, lower case
        "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
        # typographic quotes, so "user’s" reads as "user's"
        "\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"',
    }
)  # fmt: skip

_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4})+")
# one scan finds both: a hex blob (0x optional) is made of base64's letters too
_BLOB = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"(?:0x)?((?:[0-9a-fA-F]{2}){8,})")
_SPACED = re.compile(r"\b(?:\w ){3,}\w\b")  # "i g n o r e": letters spaced out to dodge a pattern


def strip_invisible(text: str) -> str:
    """``text`` without its invisible characters and with its controls (line breaks too) as spaces."""
    text = INVISIBLE.sub("", text)
    return CONTROL.sub(" ", text)


def escape_invisible(text: str) -> str:
    """``text`` with each control and invisible character written as its escape (``\\x1b``, ``\\u200b``)."""
    return _CONTROL_OR_INVISIBLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _clean(text: str) -> str:
    text = CONTROL.sub(" ", text)
    if not text.isascii():
        text = INVISIBLE.sub("", text)
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return _SPACES.sub(" ", text).strip()


def fold(text: str) -> str:
    """The text a pattern should match: cleaned, look-alikes made Latin, case-folded, one space apart."""
    text = _clean(text)
    if not text.isascii():
        text = text.translate(_LOOKALIKES)
    return text.casefold()


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or sum(ch.isalpha() for ch in text) < len(text) // 2:
        return None
    return text


def _unblob(match: re.Match[str]) -> str:
    blob = match.group()
    if hexed := _HEX.fullmatch(blob):
        raw: bytes | None = bytes.fromhex(hexed.group(1))
    elif len(blob) % 4:
        return blob
    else:
        try:
            raw = base64.b64decode(blob.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            return blob
    text = _printable(raw) if raw else None
    return f" {text} " if text else blob


def _unescape(match: re.Match[str]) -> str:
    try:
        return match.group().encode("ascii").decode("unicode_escape")
    except UnicodeDecodeError:
        return match.group()


def decode(text: str) -> str | None:
    """``text`` with its encodings undone (percent, HTML entities, escapes, spaced letters, base64, hex), or None."""
    out = text
    if "%" in out:
        out = unquote(unquote(out))
    if "&" in out and ";" in out:
        out = html.unescape(out)
    if "\\" in out:
        out = _ESCAPES.sub(_unescape, out)
    out = _SPACED.sub(lambda m: m.group().replace(" ", ""), out)
    if len(out) >= 16:
        out = _BLOB.sub(_unblob, out)
    return out if out != text else None


@dataclass(frozen=True)
class TextViews:
    """One text seen the ways the rules need (see the module docstring)."""

    raw: str
    clean: str
    folded: str
    decoded: str | None

    @cached_property
    def words(self) -> list[str]:
        """The folded text's words (``\\w+``, an underscore splitting them as a space does)."""
        return _WORD.findall(self.folded.replace("_", " "))

    @property
    def searchable(self) -> tuple[str, ...]:
        """The views a content pattern is matched against: folded, then decoded when it differs."""
        return (self.folded,) if self.decoded is None else (self.folded, self.decoded)


def views(text: str) -> TextViews:
    """The raw, clean, folded and decoded views of ``text``."""
    clean = _clean(text)
    folded = clean.translate(_LOOKALIKES).casefold() if not clean.isascii() else clean.casefold()
    undone = decode(clean)
    decoded = fold(undone) if undone is not None else None
    return TextViews(text, clean, folded, decoded if decoded != folded else None)
