"""The workshop server's input rules, in one place (used by :mod:`rtclab.server`).

Everything a client sends passes through these functions before the server
acts on it or forwards it:

* :func:`parse` — a message is a JSON object no larger than the limit, with a
  string ``type``; ``NaN``, ``Infinity`` and numbers too large for a double are
  refused (a browser's ``JSON.parse`` throws on them, so relaying them would
  lose the message for every browser), and so is nesting deeper than
  :data:`MAX_DEPTH`;
* :func:`clean_name` — a user name is normalised (NFKC), stripped of markup,
  control and invisible characters, limited to letters of one script, ASCII
  digits, single spaces and ``-_.``, and at most :data:`MAX_NAME` characters;
  :func:`skeleton` is what two names must not share (case and look-alikes
  folded), so ``Bot`` or ``b0t`` cannot pose as ``bot``;
* :func:`clean_text` — chat text loses its markup the way the MDN sample's
  server strips it (``<...>`` removed), and what is left of ``< > & " '`` is
  escaped: the sample's page inserts chat as HTML, so text arrives HTML-safe
  (an unclosed ``<img src=x onerror=...`` would otherwise run).

Each function raises :class:`Refused` with an error code and a short text
the server sends back (``{"type": "error", "error": code, "text": text}``).

Examples
--------
>>> clean_name("  Zoë <b>K</b> ")
'Zoë K'
>>> skeleton("B0T") == skeleton("bot")
True
>>> clean_text('hi <img src=x onerror=alert(1)>there')
'hi there'
>>> clean_text('1 < 2 & <img src=x onerror=alert(1) ')
'1 &lt; 2 &amp; &lt;img src=x onerror=alert(1) '
>>> parse('{"type": "message", "n": NaN}')
Traceback (most recent call last):
...
rtclab.server_rules.Refused: malformed: NaN is not JSON (browsers' JSON.parse refuses it)
"""

from __future__ import annotations

import html
import json
import math
import re
import unicodedata
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NAME", "Refused", "clean_name", "clean_text", "parse", "skeleton"]

#: deepest nesting of arrays and objects accepted in a message (signaling needs 3)
MAX_DEPTH = 16
#: longest user name, in characters (after cleaning)
MAX_NAME = 32

_TAG = re.compile(r"<[^>]*>")  # the sample's server uses /(<([^>]+)>)/ig on chat text
_SPACES = re.compile(r"\s+")
_NAME_PUNCT = frozenset("-_. ")
_JOINED_SCRIPTS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK", "CJK": "CJK"}
#: scripts whose accents compose under NFKC: a combining mark left over there is a disguise
_COMPOSED_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})
# look-alikes folded before comparing names (a small table, UTS #39 in spirit, not in full)
_LOOKALIKE = str.maketrans({
    "I": "l", "1": "l", "0": "o", "|": "l",
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c",
    "Т": "t", "У": "y", "Х": "x", "І": "l", "Ј": "j", "Ѕ": "s",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "Α": "a", "Β": "b", "Ε": "e", "Ι": "l", "Κ": "k", "Μ": "m", "Ν": "n",
    "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x", "Ζ": "z", "Η": "h",
})


class Refused(ValueError):
    """A message or field the server will not accept: ``code`` and a short ``text``."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def _constant(name: str) -> Any:
    raise Refused("malformed", f"{name} is not JSON (browsers' JSON.parse refuses it)")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise Refused("malformed", f"number {text[:24]} is too large for a double (it would become Infinity)")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse(raw: str | bytes, *, max_bytes: int = 64 * 1024, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A client's WebSocket message as a dict, or :class:`Refused` saying why not."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raise Refused("malformed", "binary frames are not accepted: send JSON as text")
    size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise Refused("too-big", f"message of {size} bytes refused (limit {max_bytes})")
    try:
        message = json.loads(raw, parse_constant=_constant, parse_float=_finite)
    except Refused:
        raise
    except RecursionError:
        raise Refused("too-deep", f"nesting deeper than {max_depth} levels refused") from None
    except ValueError as exc:
        raise Refused("malformed", f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise Refused("malformed", "a message is a JSON object with a string 'type'")
    if _too_deep(message, max_depth):
        raise Refused("too-deep", f"nesting deeper than {max_depth} levels refused")
    return message


def _script(ch: str) -> str:
    word = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
    return _JOINED_SCRIPTS.get(word, word)


def clean_name(raw: Any) -> str:
    """The name a user asked for, made safe to show anywhere (see the module docstring).

    Characters that are not allowed are dropped; :class:`Refused` (``bad-name``)
    if the result mixes scripts or nothing is left.
    """
    if not isinstance(raw, str):
        raise Refused("bad-name", "a user name is a string")
    text = unicodedata.normalize("NFKC", raw[: MAX_NAME * 8])
    text = _TAG.sub("", text)
    kept: list[str] = []
    scripts: set[str] = set()
    base = ""  # script of the letter a combining mark would sit on
    marks = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Lu", "Ll", "Lt", "Lo"):
            base = _script(ch)
            scripts.add(base)
            marks = 0
            kept.append(ch)
        elif cat in ("Mn", "Mc"):
            if base and base not in _COMPOSED_SCRIPTS and marks < 2:
                marks += 1
                kept.append(ch)
        elif ch.isascii() and (ch.isdigit() or ch in _NAME_PUNCT):
            base, marks = "", 0
            kept.append(ch)
        elif cat == "Zs":
            base, marks = "", 0
            kept.append(" ")
        # anything else (controls, invisible format characters, symbols, markup) is dropped
    name = _SPACES.sub(" ", "".join(kept)).strip(" ")[:MAX_NAME].strip(" ")
    if len(scripts) > 1:
        raise Refused("bad-name", f"a name uses one script; this one mixes {', '.join(sorted(s.lower() for s in scripts))}")
    if not name:
        raise Refused("bad-name", "the name is empty once markup, invisible and disallowed characters are removed")
    return name


def skeleton(name: str) -> str:
    """What two user names must not share: case and common look-alikes folded."""
    return name.translate(_LOOKALIKE).casefold().replace("rn", "m").translate(_LOOKALIKE)


def clean_text(raw: Any) -> str:
    """Chat text made safe to insert as HTML: tags stripped as the sample does, the rest escaped."""
    if not isinstance(raw, str):
        raise Refused("malformed", "chat 'text' is a string")
    return html.escape(_TAG.sub("", raw), quote=True)
