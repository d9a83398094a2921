"""Scenarios, essentials and verdicts: the vocabulary of the conformance suite.

A :class:`Scenario` states one behaviour (its ``title``), names the
web-platform-tests file it follows (``name`` = ``<wpt file>/<case>``), and
carries the same steps twice: ``js`` (an ``async (h) => {...}`` function run in
a Chromium page, see :mod:`rtclab.conformance.harness`) and ``peer`` (an
``async def (h)`` run on :class:`rtclab.Peer`). Both write rows of rtclab's
frame schema (:mod:`rtclab.trace`); ``essentials(frame)`` reduces a frame to
the facts the course relies on (state sequences, which calls succeed or fail
with which error name, event and candidate counts, whether media flows), as a
JSON-able dict. Two results are compared key by key: times (keys ending in
``_s``) within :data:`TIME_TOLERANCE` of Chromium's, everything else exactly.

The verdict of a scenario is ``match`` (rtclab's essentials equal
Chromium's), ``documented difference`` (they differ and the scenario says
why in ``difference``) or ``mismatch`` (they differ and nothing explains it:
a bug in rtclab, or a note to write).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "DOCUMENTED",
    "MATCH",
    "MISMATCH",
    "SCENARIOS",
    "TIME_TOLERANCE",
    "Scenario",
    "calls",
    "compare",
    "count",
    "observed",
    "scenario",
    "seconds_between",
    "states",
    "steps_done",
    "t_first",
    "verdict",
]

MATCH = "match"
DOCUMENTED = "documented difference"
MISMATCH = "mismatch"
#: Relative tolerance on times (keys ending in ``_s``): the machine may be loaded.
TIME_TOLERANCE = 0.25

Essentials = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """One behaviour, scripted for Chromium (``js``) and for :class:`rtclab.Peer` (``peer``).

    Parameters
    ----------
    name
        ``<web-platform-tests file>/<case>``, e.g.
        ``RTCPeerConnection-addIceCandidate/before-remote-description``.
    title
        The behaviour, in one sentence.
    js
        ``async (h) => {...}``: the steps in the page (``h``: the page harness).
    peer
        ``async def steps(h)``: the same steps on ``Peer`` (``h``: :class:`PeerHarness`).
    essentials
        ``frame -> dict``: what is compared.
    difference
        Why rtclab is known to differ (``None``: it should match).
    timeout_s
        The scenario's deadline (wall seconds in Chromium and on the real network,
        virtual in the simulation); long only for the timer scenarios.
    """

    name: str
    title: str
    js: str
    peer: Callable[[Any], Awaitable[None]]
    essentials: Callable[[pd.DataFrame], Essentials]
    difference: str | None = None
    timeout_s: float = 15.0
    tags: tuple[str, ...] = field(default=())

    @property
    def wpt_file(self) -> str:
        """The web-platform-tests file this scenario follows (``webrtc/<file>``)."""
        return self.name.split("/", 1)[0]

    @property
    def slug(self) -> str:
        """A file-name-safe form of :attr:`name`."""
        return self.name.replace("/", "__")


#: Every scenario, by name, in definition order.
SCENARIOS: dict[str, Scenario] = {}


def scenario(**kw: Any) -> Scenario:
    """Define and register a :class:`Scenario` (names are unique)."""
    sc = Scenario(**kw)
    if sc.name in SCENARIOS:
        raise ValueError(f"duplicate conformance scenario {sc.name!r}")
    SCENARIOS[sc.name] = sc
    return sc


# --- reading a frame -------------------------------------------------------------------------


def _rows(frame: pd.DataFrame, actor: str | None = None, kind: str | None = None, name: str | None = None) -> pd.DataFrame:
    sel = pd.Series(True, index=frame.index)
    if actor is not None:
        sel &= frame["actor"] == actor
    if kind is not None:
        sel &= frame["kind"] == kind
    if name is not None:
        sel &= frame["name"] == name
    return frame[sel]


def steps_done(frame: pd.DataFrame) -> int:
    """Position (in frame order) of the row that ends the scenario's steps.

    The harness closes whatever is left open after it; rows from then on are
    the harness's, not the scenario's (:func:`states` and :func:`calls` leave them out).
    """
    done = (frame["actor"] == "network") & (frame["kind"] == "call") & (frame["name"] == "steps-done")
    positions = [i for i, flag in enumerate(done.tolist()) if flag]
    return positions[0] if positions else len(frame)


def _during(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[: steps_done(frame)]


def states(frame: pd.DataFrame, actor: str, machine: str, *, after: float | None = None) -> list[str]:
    """The values a state machine took while the steps ran, in order (from ``after`` ms on)."""
    rows = _rows(_during(frame), actor, "state", machine)
    if after is not None:
        rows = rows[rows["t_ms"] >= after]
    return rows["value"].tolist()


def calls(frame: pd.DataFrame, actor: str, name: str) -> list[str]:
    """The outcome of each call ``name``: ``ok`` or the error's name (``InvalidStateError``...)."""
    out = []
    for value, detail in _rows(_during(frame), actor, "call", name)[["value", "detail"]].itertuples(index=False):
        out.append("ok" if value == "ok" else (str(detail).split(":", 1)[0].strip() or "Error"))
    return out


def count(frame: pd.DataFrame, actor: str | None, kind: str, name: str, value: str | None = None) -> int:
    """How many rows match (while the steps ran)."""
    rows = _rows(_during(frame), actor, kind, name)
    if value is not None:
        rows = rows[rows["value"] == value]
    return int(len(rows))


def observed(frame: pd.DataFrame, actor: str, what: str) -> list[str]:
    """The values a script noted with ``h.note(actor, what, value)``, in order."""
    return _rows(frame, actor, "call", f"observe:{what}")["value"].tolist()


def t_first(frame: pd.DataFrame, actor: str | None, kind: str, name: str, value: str | None = None, *, after: float | None = None) -> float | None:
    """Time (ms) of the first matching row (from ``after`` ms on), or ``None``."""
    rows = _rows(_during(frame), actor, kind, name)
    if value is not None:
        rows = rows[rows["value"] == value]
    if after is not None:
        rows = rows[rows["t_ms"] >= after]
    return float(rows["t_ms"].iloc[0]) if len(rows) else None


def seconds_between(start_ms: float | None, end_ms: float | None) -> float | None:
    """``end - start`` in seconds (rounded to 0.1 s), ``None`` if either is missing."""
    if start_ms is None or end_ms is None:
        return None
    return round((end_ms - start_ms) / 1000.0, 1)


# --- comparing ------------------------------------------------------------------------------


def _same(key: str, reference: Any, value: Any) -> bool:
    if key.endswith("_s") and isinstance(reference, (int, float)) and isinstance(value, (int, float)):
        return abs(value - reference) <= TIME_TOLERANCE * abs(reference) + 1e-9
    return bool(reference == value)


def compare(reference: Essentials, other: Essentials) -> list[str]:
    """The keys on which ``other`` differs from ``reference`` (times within :data:`TIME_TOLERANCE`)."""
    keys = list(reference) + [k for k in other if k not in reference]
    return [k for k in keys if k not in reference or k not in other or not _same(k, reference[k], other[k])]


def verdict(sc: Scenario, chromium: Essentials, peer: Essentials) -> str:
    """``match``, ``documented difference`` or ``mismatch`` for one scenario."""
    if not compare(chromium, peer):
        return MATCH
    return DOCUMENTED if sc.difference else MISMATCH
