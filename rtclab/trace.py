"""The event record: one clock, one list of rows, one tidy frame.

Every actor of a run (both peers, the signaling channel, the user and the
network) writes into one :class:`Trace`. Recording is a tuple append, so it is
cheap enough to call from inside aiortc event handlers; the pandas frame is
built once, when asked for.

Frame schema (API)
------------------
========  ==========  ==========================================================
column    dtype       meaning
========  ==========  ==========================================================
t_ms      float64     milliseconds since the run started (one clock for all)
actor     category    ``caller``, ``callee``, ``channel``, ``user``, ``network``
kind      category    ``state``, ``call``, ``ice``, ``signal``, ``media``,
                      ``user``, ``error``, ``net``
name      string      state machine, API call, message type, candidate event
value     string      new state; ``ok``/``error``; ``sent``/``delivered``/
                      ``dropped``; ``gathered``/``added``/``rejected``/``lost``
prev      string      previous state (``kind == "state"``), else ``""``
ref       string      links rows of one message or one candidate
detail    string      human-readable extra (candidate line, error text, ...)
========  ==========  ==========================================================

Rows are sorted by ``t_ms``; rows with the same time keep the order in which
they were recorded. Missing text is the empty string, never ``NaN``.

Vocabularies
------------
``kind == "state"``: ``name`` is one of ``signalingState``,
``iceGatheringState``, ``iceConnectionState``, ``connectionState``.
``kind == "call"``: ``name`` is the browser API name (``createOffer``,
``setRemoteDescription``, ``addIceCandidate``, ``addTrack``,
``RTCPeerConnection`` for construction, ``close``...), ``value`` is ``ok`` or
``error``. ``kind == "ice"``: ``name`` is ``candidate`` (``value`` gathered /
sent / added / rejected / lost / end, or late / ignored for a candidate added
after end-of-candidates of its m-section and generation), ``icecandidate``
(the emulated browser event), ``pair`` (aioice's check log), ``log``
(aioice's failures, ``checks timed out``, ``consent ok`` / ``disconnected``
/ ``failed``) or ``selected-pair``. ``kind == "signal"``: ``name`` is the
message type, ``value`` sent / delivered / dropped / refused. ``kind ==
"media"``: ``track`` (``detail`` ``muted`` when emulated), ``unmute``,
``first-frame``, ``ended``, ``datachannel``. ``kind == "user"``: ``click`` / ``prompt``.
``kind == "error"``: ``name`` is where it happened, ``value`` the error type
(``InvalidStateError``...), ``detail`` the message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ACTORS",
    "COLUMNS",
    "KINDS",
    "Trace",
    "capture_events",
    "empty_frame",
    "load",
    "save",
]

COLUMNS: tuple[str, ...] = ("t_ms", "actor", "kind", "name", "value", "prev", "ref", "detail")
ACTORS: tuple[str, ...] = ("caller", "callee", "channel", "user", "network")
KINDS: tuple[str, ...] = ("state", "call", "ice", "signal", "media", "user", "error", "net")
_TEXT = ("name", "value", "prev", "ref", "detail")
_ACTOR_SET = frozenset(ACTORS)
_KIND_SET = frozenset(KINDS)

Row = tuple[float, str, str, str, str, str, str, str]


class Trace:
    """Collects the events of one run on one clock.

    Parameters
    ----------
    clock
        A function returning seconds on a monotonic clock. The first call
        fixes time zero. Defaults to the running event loop's ``time()`` (which
        is virtual in a simulated run), else :func:`time.monotonic`.

    Examples
    --------
    >>> tr = Trace(clock=iter([0.0, 0.0015]).__next__)
    >>> tr.record("caller", "call", "createOffer", "ok")
    >>> tr.frame()[["t_ms", "actor", "name"]].to_dict("records")
    [{'t_ms': 1.5, 'actor': 'caller', 'name': 'createOffer'}]
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or _default_clock()
        self._t0 = self._clock()
        self.rows: list[Row] = []
        self._listeners: list[Callable[[Row], None]] = []
        self._candidate_refs: dict[tuple[str, str], str] = {}
        self._counters: dict[str, int] = {}

    def now_ms(self) -> float:
        """Milliseconds since this trace started, rounded to the microsecond."""
        return round((self._clock() - self._t0) * 1000.0, 3)

    def record(
        self,
        actor: str,
        kind: str,
        name: str,
        value: str = "",
        *,
        prev: str = "",
        ref: str = "",
        detail: str = "",
        t_ms: float | None = None,
    ) -> None:
        """Append one event (cheap: no pandas work)."""
        row: Row = (
            self.now_ms() if t_ms is None else round(float(t_ms), 3),
            actor,
            kind,
            str(name),
            str(value),
            str(prev),
            str(ref),
            str(detail),
        )
        self.rows.append(row)
        for listener in list(self._listeners):
            try:
                listener(row)
            except Exception:  # a broken listener must never break a run
                self._listeners.remove(listener)

    def subscribe(self, listener: Callable[[Row], None]) -> Callable[[], None]:
        """Call ``listener(row)`` for every new row; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def next_id(self, prefix: str) -> str:
        """A per-trace counter-based id such as ``m1``, ``m2`` (deterministic)."""
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return f"{prefix}{n}"

    def candidate_ref(self, owner: str, candidate: str, *, create: bool = False) -> str:
        """The ref of a candidate line gathered by ``owner`` (``caller:c1``...).

        Both peers and the channel share one trace, so the same candidate keeps
        the same ref from gathering to its fate at the other side.
        """
        key = (owner, _candidate_key(candidate))
        ref = self._candidate_refs.get(key)
        if ref is None and create:
            ref = f"{owner}:{self.next_id(owner + ':c').split(':', 1)[1]}"
            self._candidate_refs[key] = ref
        return ref or ""

    def find_candidate_ref(self, candidate: str) -> str:
        """The ref of a candidate line whoever gathered it, or ``""``."""
        key = _candidate_key(candidate)
        for (_owner, k), ref in self._candidate_refs.items():
            if k == key:
                return ref
        return ""

    def frame(self) -> pd.DataFrame:
        """The tidy frame of everything recorded so far (see module docstring)."""
        return _rows_to_frame(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _candidate_key(candidate: str) -> str:
    text = candidate.strip()
    if text.startswith("a="):
        text = text[2:]
    return text


def _default_clock() -> Callable[[], float]:
    import asyncio

    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        return time.monotonic


def _to_frame(rows: list[Row] | list[tuple[Any, ...]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else pd.DataFrame(
        {c: [] for c in COLUMNS}
    )
    return _normalise(df)


def _row_time(row: tuple[Any, ...]) -> Any:
    return row[0]


def _rows_to_frame(rows: list[Row]) -> pd.DataFrame:
    """:func:`_to_frame` for rows as :meth:`Trace.record` writes them, built in one go.

    Sorting the tuples (stable, by time) and handing pandas typed columns skips
    the copies and conversions :func:`_normalise` needs for arbitrary input;
    the frame is the same. Anything unusual (a NaN time, a non-text field)
    takes the general path.
    """
    if not rows:
        return _to_frame(rows)
    cols = list(zip(*sorted(rows, key=_row_time)))
    if len(cols) != len(COLUMNS) or any(type(t) is not float or t != t for t in cols[0]):
        return _to_frame(rows)
    if any(type(x) is not str for col in cols[3:] for x in col):
        return _to_frame(rows)
    if not set(cols[1]) <= _ACTOR_SET or not set(cols[2]) <= _KIND_SET:
        return _to_frame(rows)
    data: dict[str, Any] = {
        "t_ms": np.asarray(cols[0], dtype="float64"),
        "actor": pd.Categorical(cols[1], categories=list(ACTORS)),
        "kind": pd.Categorical(cols[2], categories=list(KINDS)),
    }
    for col, values in zip(_TEXT, cols[3:]):
        data[col] = pd.array(values, dtype="string")
    return pd.DataFrame(data, columns=list(COLUMNS))


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["t_ms"] = df["t_ms"].astype("float64")
    df["actor"] = pd.Categorical(df["actor"].astype(object), categories=list(ACTORS))
    df["kind"] = pd.Categorical(df["kind"].astype(object), categories=list(KINDS))
    for col in _TEXT:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str).astype("string")
    df = df.sort_values("t_ms", kind="stable").reset_index(drop=True)
    return df[list(COLUMNS)]


def empty_frame() -> pd.DataFrame:
    """A frame with the schema and no rows."""
    return _to_frame([])


def save(frame: pd.DataFrame, path: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
    """Write an event frame as CSV (first line: ``# rtclab`` and JSON metadata).

    Examples
    --------
    >>> import tempfile, os
    >>> tr = Trace(clock=iter([0.0, 0.001]).__next__); tr.record("user", "user", "click", "call")
    >>> p = save(tr.frame(), os.path.join(tempfile.mkdtemp(), "run.csv"))
    >>> load(p).equals(tr.frame())
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        # CRLF line ends (RFC 4180): the csv writer then quotes any text holding \r or \n
        fh.write("# rtclab " + json.dumps(meta or {}, sort_keys=True, default=str) + "\r\n")
        frame[list(COLUMNS)].to_csv(fh, index=False, lineterminator="\r\n")
    return path


def load(path: str | Path) -> pd.DataFrame:
    """Read a frame written by :func:`save` / ``Run.save`` (identical dtypes and values).

    The run's metadata, if any, is in ``frame.attrs["meta"]``.

    Examples
    --------
    >>> from rtclab import data
    >>> df = load(data.path("traces/basic-lan.csv"))  # doctest: +SKIP
    """
    path = Path(path)
    with path.open("r", encoding="utf-8", newline="") as fh:  # keep \r\n inside quoted text
        first = fh.readline()
        meta: dict[str, Any] = {}
        if first.startswith("# rtclab"):
            meta = json.loads(first[len("# rtclab"):].strip() or "{}")
        else:
            fh.seek(0)
        df = pd.read_csv(
            fh,
            dtype={c: str for c in _TEXT},
            keep_default_na=False,
            na_filter=False,
        )
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not an rtclab event file: missing columns {missing}")
    out = _normalise(df)
    out.attrs["meta"] = meta
    return out


@contextmanager
def capture_events(trace: Trace) -> Iterator[list[Row]]:
    """Yield a list that receives every row recorded while the block runs.

    A testing helper in the spirit of ``structlog.testing.capture_logs``.

    Examples
    --------
    >>> tr = Trace(clock=lambda: 0.0)
    >>> with capture_events(tr) as rows:
    ...     tr.record("caller", "call", "createOffer", "ok")
    >>> [r[3] for r in rows]
    ['createOffer']
    """
    rows: list[Row] = []
    unsubscribe = trace.subscribe(rows.append)
    try:
        yield rows
    finally:
        unsubscribe()
