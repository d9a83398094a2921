"""Timing plots of one run (or of a sweep), readable on a projector.

Every plot reads the tidy event frame described in :mod:`rtclab.trace` (or a
sweep frame, one row per trial) and nothing else. Each function takes the data
first (a frame, or any object with an ``.events`` frame such as a ``Run``),
keywords after, draws on ``ax`` (a new projector-sized figure when ``ax`` is
``None``) and returns the Axes. The input frame is never modified.

Time runs left to right on every per-run plot (``time (ms)``), so the
sequence diagram and the state bands can share one time axis
(:func:`summary`). ``sequence``, ``states``, ``candidates`` and ``summary``
take ``time_scale`` (``"auto"``, ``"linear"`` or ``"symlog"``): with
``"auto"``, a run whose events crowd into a busy start and then wait a long
quiet time (a 60 s ICE timeout) gets an axis that is linear over the start
and logarithmic over the tail (marked ``log scale →``, gid
``timescale:symlog``), so the first second stays readable.

Drawn objects carry a ``gid`` so that tests (and curious learners) can find
them without looking at pixels:

========================  ====================================================
gid                       object
========================  ====================================================
``lane:<actor>``          a swimlane of :func:`sequence` (caller, channel, callee)
``msg:<ref>``             one arrow per *delivered* signaling message
``drop:<ref>``            a message lost by the channel (cross marker)
``refuse:<ref>``          a message refused by the channel (cross marker)
``moment:<what>``         a key-moment note of :func:`sequence`
``state:<a>:<m>:<s>``     a state segment of :func:`states`
``instant:<a>:<m>:<s>``   a zero-length state of :func:`states` (diamond)
``error:<actor>``         an error marker of :func:`states`
``cand:<ref>``            the life line of one candidate in :func:`candidates`
``fate:<ref>``            the fate marker of one candidate
``vline:<side>:<what>``   ``pc`` / ``remote`` reference lines of :func:`candidates`
``cell:<i>:<j>``          an annotated cell of :func:`heatmap`
``strip:<group>``         the jittered points of one group in :func:`compare`
========================  ====================================================

Rows the plots read: ``signal`` rows (sent / delivered / dropped / refused,
linked by ``ref``), ``ice``/``candidate`` rows (gathered / end / added /
rejected / lost, linked by the candidate ``ref``), ``state`` rows (with
``prev``), ``call`` rows ``RTCPeerConnection`` and ``setRemoteDescription``
(``ok``; ``detail`` starting ``rollback`` is ignored), ``negotiationneeded``,
``user`` clicks and prompts, ``media``/``first-frame`` and ``error`` rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle
from matplotlib.ticker import AutoLocator, FixedLocator, FuncFormatter, Locator

__all__ = [
    "FATE_COLORS",
    "EventsLike",
    "HasEvents",
    "OKABE_ITO",
    "STATE_COLORS",
    "beside",
    "candidates",
    "compare",
    "gallery",
    "heatmap",
    "overlapping_texts",
    "sequence",
    "states",
    "summary",
]


class HasEvents(Protocol):
    """Anything carrying an event frame, such as ``rtclab.Run``."""

    @property
    def events(self) -> pd.DataFrame: ...


#: What the per-run plots accept: an event frame or a Run.
EventsLike: TypeAlias = "pd.DataFrame | HasEvents"

# --------------------------------------------------------------------------- style

#: The Okabe–Ito palette: distinguishable with the common colour-vision deficiencies.
OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
    "grey": "#999999",
}
_GREY_LIGHT = "#C8C8C8"
_DARK = "#3A3A3A"

FS = 14  # base font size (projector)
FS_SMALL = 11
FS_TITLE = 16
PROJECTOR_FIGSIZE = (13.0, 6.5)
_RC = {"font.size": FS, "axes.titlesize": FS_TITLE, "axes.labelsize": FS}

#: Colour of each state value, by meaning: not started, in progress, done, trouble.
STATE_COLORS: dict[str, str] = {
    "new": _GREY_LIGHT,
    "have-local-offer": OKABE_ITO["orange"],
    "have-remote-offer": OKABE_ITO["orange"],
    "have-local-pranswer": OKABE_ITO["orange"],
    "have-remote-pranswer": OKABE_ITO["orange"],
    "gathering": OKABE_ITO["orange"],
    "checking": OKABE_ITO["orange"],
    "connecting": OKABE_ITO["orange"],
    "stable": OKABE_ITO["green"],
    "complete": OKABE_ITO["green"],
    "connected": OKABE_ITO["green"],
    "completed": OKABE_ITO["green"],
    "disconnected": OKABE_ITO["yellow"],
    "failed": OKABE_ITO["vermillion"],
    "closed": _DARK,
}
_STATE_LEGEND = (
    ("new", _GREY_LIGHT),
    ("in progress", OKABE_ITO["orange"]),
    ("stable / done", OKABE_ITO["green"]),
    ("disconnected", OKABE_ITO["yellow"]),
    ("failed", OKABE_ITO["vermillion"]),
    ("closed", _DARK),
)

#: Colour of a candidate's fate at the receiving peer.
FATE_COLORS: dict[str, str] = {
    "added": OKABE_ITO["green"],
    "lost": OKABE_ITO["vermillion"],
    "rejected": OKABE_ITO["orange"],
    "dropped": OKABE_ITO["purple"],
    "pending": OKABE_ITO["grey"],
}
_FATE_LABELS = {
    "added": "added",
    "lost": "lost (no peer connection / too early)",
    "rejected": "rejected (error)",
    "dropped": "dropped by the channel",
    "pending": "pending (no fate)",
}

_MSG_COLORS = {
    "offer": OKABE_ITO["blue"],
    "answer": OKABE_ITO["green"],
    "cand": OKABE_ITO["grey"],
    "end": _DARK,
    "hang-up": OKABE_ITO["black"],
}
_SIDE_COLORS = {"caller": OKABE_ITO["blue"], "callee": OKABE_ITO["black"]}

MACHINES: tuple[tuple[str, str], ...] = (
    ("signalingState", "signaling"),
    ("iceGatheringState", "ICE gathering"),
    ("iceConnectionState", "ICE connection"),
    ("connectionState", "connection"),
)
_INITIAL = {
    "signalingState": "stable",
    "iceGatheringState": "new",
    "iceConnectionState": "new",
    "connectionState": "new",
}
_TEXT_COLS = ("actor", "kind", "name", "value", "prev", "ref", "detail")
_PEERS = ("caller", "callee")


# --------------------------------------------------------------------------- helpers


def _events(data: object) -> pd.DataFrame:
    """A private, plain-typed copy of the event frame of ``data`` (a frame or a Run)."""
    frame = data if isinstance(data, pd.DataFrame) else getattr(data, "events", data)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"expected an event DataFrame or an object with .events, got {type(data).__name__}"
        )
    out = pd.DataFrame(index=range(len(frame)))
    t = frame["t_ms"] if "t_ms" in frame.columns else pd.Series(np.nan, index=frame.index)
    out["t_ms"] = pd.to_numeric(t, errors="coerce").astype("float64").to_numpy()
    for col in _TEXT_COLS:
        if col in frame.columns:
            values = frame[col].astype(object).where(frame[col].notna(), "")
            out[col] = pd.Series([str(v) for v in values], index=out.index, dtype=object)
        else:
            out[col] = pd.Series("", index=out.index, dtype=object)
    out = out[np.isfinite(out["t_ms"])]
    return out.sort_values("t_ms", kind="stable").reset_index(drop=True)


def _sweep(data: object) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"expected a sweep DataFrame, got {type(data).__name__}")
    return data


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = PROJECTOR_FIGSIZE) -> Axes:
    if ax is not None:
        return ax
    with plt.rc_context(_RC):
        _fig, new = plt.subplots(figsize=figsize, layout="constrained")
        interactive = matplotlib.is_interactive()
    _keep_interactive(interactive)
    return new


def _keep_interactive(interactive: bool) -> None:
    """Undo rc_context's reset of interactive mode.

    The notebook's inline backend switches interactive mode on when pyplot
    first loads it, which may happen inside our ``rc_context``; leaving the
    context would switch it off again and no later figure would show.
    """
    if interactive and not matplotlib.is_interactive():
        matplotlib.interactive(True)


def _time_limits(df: pd.DataFrame) -> tuple[float, float]:
    if df.empty:
        return 0.0, 1.0
    lo = min(0.0, float(df["t_ms"].min()))
    hi = float(df["t_ms"].max())
    span = hi - lo
    if span <= 0:
        span = 1.0
    return lo - 0.025 * span, hi + 0.04 * span


def _nice_ceil(x: float) -> float:
    """The smallest 1, 2 or 5 × 10^k that is >= x."""
    import math

    if x <= 0:
        return 1.0
    k = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10**k >= x:
            return float(m * 10**k)
    return float(10 ** (k + 1))


def _linthresh(df: pd.DataFrame | None, hi: float, scale: str) -> float | None:
    """Where a long, quiet tail starts (symlog above it), or None for a linear axis.

    A run whose events crowd into its first second and then waits tens of
    seconds for a timeout would otherwise squash everything that matters.
    """
    if scale == "linear" or df is None or df.empty:
        return None
    t = np.unique(df["t_ms"].to_numpy(dtype=float))
    if len(t) < 2:
        return None
    gaps = np.diff(t)
    i = int(np.argmax(gaps))
    before_gap = float(t[i])  # the busy start ends here
    if scale == "symlog":
        return _nice_ceil(max(before_gap, 10.0) * 1.2)
    if hi < 3000 or gaps[i] < 0.6 * (hi - float(t[0])):
        return None
    return _nice_ceil(max(before_gap, 10.0) * 1.2)


def _format_time_axis(ax: Axes, lo: float, hi: float, df: pd.DataFrame | None = None, scale: str = "auto") -> None:
    """Label the x axis ``time (ms)`` with ticks readable from 10 ms to 60 s.

    ``scale="auto"`` switches to a symmetric-log axis (linear over the busy
    start, logarithmic over a long quiet tail) when the run is mostly waiting.
    """
    if scale not in ("auto", "linear", "symlog"):
        raise ValueError(f"time_scale must be 'auto', 'linear' or 'symlog', got {scale!r}")
    lt = _linthresh(df, hi, scale)
    if lt is not None:
        decades = max(float(np.log10(max(hi, lt * 1.01) / lt)), 0.1)
        # the busy, linear start gets about 60% of the width, the quiet tail the rest
        ax.set_xscale("symlog", linthresh=lt, linscale=max(0.5, 1.5 * decades))
        lo = -0.02 * lt
        ticks = [float(t) for t in np.linspace(0.0, lt, 5)] + [
            float(m * 10**k) for k in range(0, 8) for m in (1, 5) if 1.5 * lt < m * 10**k <= hi
        ]
        ax.axvline(lt, color=OKABE_ITO["grey"], lw=0.8, ls=":", zorder=0, gid="timescale:symlog")
        ax.text(lt, 1.0, " log scale →", transform=ax.get_xaxis_transform(), fontsize=FS_SMALL,
                color=OKABE_ITO["grey"], va="bottom", ha="left", gid="timescale:label")
    ax.set_xlim(lo, hi)
    span = hi - lo

    def fmt(x: float, _pos: int) -> str:
        if span >= 20:
            return f"{x:,.0f}".replace(",", "\u2009")  # thin-space thousands separator
        return f"{x:g}"

    ax.xaxis.set_major_formatter(FuncFormatter(fmt))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda _x, _p: ""))
    base = FixedLocator(ticks) if lt is not None else AutoLocator()
    ax.xaxis.set_major_locator(_SpacedTicks(base, lambda x: fmt(x, 0), FS_SMALL + 1))
    ax.set_xlabel("time (ms)" + (" — linear, then log scale" if lt is not None else ""), fontsize=FS)
    ax.tick_params(labelsize=FS_SMALL + 1)


class _SpacedTicks(Locator):
    """The ticks of ``base`` minus those whose labels would touch a neighbour's (decided at draw time).

    Keeps ``0`` and powers of ten first, so a log tail reads ``1 000 … 10 000``
    rather than ``5 00010 000``.
    """

    def __init__(self, base: Locator, fmt: Callable[[float], str], fontsize: float) -> None:
        self.base = base
        self.fmt = fmt
        self.fontsize = fontsize

    def set_axis(self, axis: Any) -> None:
        super().set_axis(axis)
        self.base.set_axis(axis)

    def __call__(self) -> Any:
        ticks = [float(t) for t in self.base()]
        axis = self.axis
        if axis is None or len(ticks) < 2:
            return ticks
        ax = axis.axes
        fig = ax.get_figure()
        lo, hi = sorted(axis.get_view_interval())
        shown = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
        xs = ax.transData.transform([(t, 0.0) for t in shown])[:, 0]
        px_per_char = 0.62 * self.fontsize * fig.dpi / 72.0  # type: ignore[union-attr]
        half = [0.5 * len(self.fmt(t)) * px_per_char + 0.3 * self.fontsize * fig.dpi / 72.0 for t in shown]  # type: ignore[union-attr]

        def rank(i: int) -> tuple[int, int]:
            t = shown[i]
            decade = t == 0 or (t > 0 and float(np.log10(t)).is_integer())
            return (0 if decade else 1, i)

        kept: list[int] = []
        for i in sorted(range(len(shown)), key=rank):
            if all(abs(xs[i] - xs[j]) >= half[i] + half[j] for j in kept):
                kept.append(i)
        return [shown[i] for i in sorted(kept)]


def _boxes_overlap(a: Any, b: Any, pad: float = 1.0) -> bool:
    return bool(a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad)


def _text_box(text: Any, renderer: Any) -> Any:
    """The drawn extent of a text, its background box included."""
    from matplotlib.transforms import Bbox

    box = text.get_window_extent(renderer)
    patch = text.get_bbox_patch()
    if patch is not None:
        text.update_bbox_position_size(renderer)  # where the box is now (a draw would place it so)
        box = Bbox.union([box, patch.get_window_extent(renderer)])
    return box


def _fixed_texts(fig: Figure) -> list[Any]:
    """Texts :func:`_declutter` must not move: tick labels, titles, axis labels, legends."""
    out: list[Any] = []
    for ax in _all_axes(fig):
        out += [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_visible() and t.get_text()]
        out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]  # noqa: SLF001
        legend = ax.get_legend()
        if legend is not None:
            out += list(legend.get_texts()) + [legend.get_title()]
    if fig._suptitle is not None:  # noqa: SLF001
        out.append(fig._suptitle)  # noqa: SLF001
    return [t for t in out if t.get_visible() and t.get_text()]


def _all_axes(fig: Figure) -> list[Axes]:
    out: list[Axes] = []
    for ax in fig.axes:
        out.append(ax)
        out += list(getattr(ax, "child_axes", []))
    return out


def _declutter(fig: Figure) -> int:
    """Move texts of the figure's axes so that no two drawn texts overlap; returns how many were hidden.

    Lays the figure out first (its final size), then places the axes' texts in
    drawing order: a text that would overlap one already placed (or a tick
    label, title or legend) is moved by one text height up or down, further
    each try, then sideways; one with no free place nearby is hidden.

    The axes' texts take no part in the layout (their place is found here,
    inside their axes), so the one draw at the start fixes every axes and
    tick label: the later rounds, which check the moved texts against each
    other, measure them where they now are without drawing again.
    """
    hidden = 0
    settled = False
    for ax in _all_axes(fig):
        for text in ax.texts:
            text.set_in_layout(False)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    fixed = [_text_box(t, renderer) for t in _fixed_texts(fig)]
    fig_box = fig.bbox
    for _round in range(3):
        placed = list(fixed)
        moved = 0
        for ax in _all_axes(fig):
            area = ax.bbox
            # names of zero-length states first; a band's own name (its colour says it too) gives way
            def rank(t: Any) -> int:
                gid = str(t.get_gid() or "")
                return 0 if gid.startswith("instantlabel:") else 2 if gid.startswith("bandlabel:") else 1

            for text in sorted(ax.texts, key=rank):
                if not text.get_visible() or not text.get_text().strip():
                    continue
                box = _text_box(text, renderer)
                ax_, ay_ = text.get_transform().transform(text.get_position())
                in_axes = area.x0 < ax_ < area.x1 and area.y0 < ay_ < area.y1 - 1.0
                inside = area if in_axes else fig_box  # a text anchored in the axes stays in them
                # first pull a text that sticks out of its axes back in
                cx = max(0.0, inside.x0 - box.x0) + min(0.0, inside.x1 - box.x1)
                cx = cx if abs(cx) >= 0.5 else 0.0  # a text pulled in last round sits on the edge: not out
                if cx == 0.0 and not any(_boxes_overlap(box, other) for other in placed):
                    placed.append(box)
                    continue
                if rank(text) == 2:
                    text.set_visible(False)
                    hidden += 1
                    continue  # hidden: nothing left to check against it
                h, w = max(box.height, 1.0) + 2.0, max(box.width, 1.0)
                tries = [(cx, 0.0)] + [(cx, k * h) for k in (1, -1, 2, -2, 3, -3, 4, -4)]
                tries += [(cx + dx * w, dy * h) for dx in (0.6, -0.6, 1.1, -1.1) for dy in (0, 1, -1)]
                for dx, dy in tries:
                    cand = box.translated(dx, dy)
                    if not (inside.x0 - 2 <= cand.x0 and cand.x1 <= inside.x1 + 2
                            and inside.y0 - 2 <= cand.y0 and cand.y1 <= inside.y1 + 2):
                        continue
                    if any(_boxes_overlap(cand, other) for other in placed):
                        continue
                    trans = text.get_transform()
                    x, y = trans.transform(text.get_position())
                    text.set_position(trans.inverted().transform((x + dx, y + dy)))
                    placed.append(cand)
                    moved += 1
                    break
                else:
                    text.set_visible(False)
                    hidden += 1
        if not moved:
            settled = True
            break
    if settled:
        # Every text is where it stays: the figure needs no draw before it is shown. Saying
        # so spares it the draw a notebook's post-execute hook (pyplot's draw_all) makes of
        # every stale figure just before the inline backend renders the figure anyway (a
        # backend that paints by itself was asked to redraw by the moves already); any later
        # change marks it stale again.
        fig.stale = False
    return hidden


def _no_events(ax: Axes, message: str = "no events") -> Axes:
    ax.text(
        0.5,
        0.5,
        message,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=FS_TITLE,
        color=OKABE_ITO["grey"],
        bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "none"},
        gid="no-events",
    )
    return ax


def _text_width_data(ax: Axes, text: str, fontsize: float, span: float) -> float:
    """Approximate width of ``text`` in x data units (no renderer needed)."""
    fig = ax.get_figure()
    assert fig is not None
    width_px = max(ax.get_position().width * fig.get_figwidth() * fig.dpi, 1.0)
    text_px = 0.6 * fontsize * len(text) * fig.dpi / 72.0
    return text_px / width_px * span


def _first_time(df: pd.DataFrame, mask: pd.Series) -> float | None:
    hit = df.loc[mask, "t_ms"]
    return float(hit.iloc[0]) if len(hit) else None


def _pc_created(df: pd.DataFrame, side: str) -> float | None:
    return _first_time(
        df,
        (df["actor"] == side)
        & (df["kind"] == "call")
        & (df["name"] == "RTCPeerConnection")
        & (df["value"] == "ok"),
    )


def _remote_set(df: pd.DataFrame, side: str) -> float | None:
    return _first_time(
        df,
        (df["actor"] == side)
        & (df["kind"] == "call")
        & (df["name"] == "setRemoteDescription")
        & (df["value"] == "ok")
        & ~df["detail"].str.startswith("rollback"),
    )


def _short_type(name: str, ref: str) -> str:
    if name == "new-ice-candidate":
        return "end" if ref.endswith(":end") else "cand"
    if name.startswith("video-"):
        return name[len("video-"):]
    return name


def _other(side: str) -> str:
    return "callee" if side == "caller" else "caller"


# --------------------------------------------------------------------------- sequence

_LANE_Y = {"caller": 2.0, "channel": 1.0, "callee": 0.0}
_LEVEL_STEP = 0.26
_LEVEL_BASE = 0.2
_MAX_LEVELS = 7


@dataclass
class _Message:
    name: str
    ref: str
    sender: str
    t_sent: float | None
    delivered: list[tuple[float, str]]
    lost: list[tuple[float, str, str]]  # (t, "drop"|"refuse", detail)

    @property
    def t_first(self) -> float:
        times = [t for t, _ in self.delivered] + [t for t, _, _ in self.lost]
        if self.t_sent is not None:
            times.append(self.t_sent)
        return min(times) if times else math.inf


def _messages(df: pd.DataFrame) -> list[_Message]:
    sig = df[df["kind"] == "signal"]
    messages: dict[tuple[str, str], _Message] = {}
    order: list[tuple[str, str]] = []
    for row in sig.itertuples(index=False):
        key = (row.name, row.ref)
        msg = messages.get(key)
        if msg is None:
            msg = _Message(row.name, row.ref, "", None, [], [])
            messages[key] = msg
            order.append(key)
        if row.value == "sent":
            if msg.t_sent is None:
                msg.t_sent = float(row.t_ms)
                msg.sender = row.actor
        elif row.value == "delivered":
            msg.delivered.append((float(row.t_ms), row.actor))
        elif row.value == "dropped":
            msg.lost.append((float(row.t_ms), "drop", row.detail))
        elif row.value == "refused":
            msg.lost.append((float(row.t_ms), "refuse", row.detail))
    out = [messages[k] for k in order]
    for msg in out:
        if not msg.sender:
            receivers = [a for _, a in msg.delivered if a in _PEERS]
            if msg.ref.split(":", 1)[0] in _PEERS:
                msg.sender = msg.ref.split(":", 1)[0]
            elif receivers:
                msg.sender = _other(receivers[0])
    return sorted(out, key=lambda m: m.t_first)


@dataclass
class _Moment:
    t: float
    lane: str
    text: str
    color: str
    key: str
    marker: str = "o"
    bold: bool = False


def _moments(df: pd.DataFrame) -> list[_Moment]:
    found: list[_Moment] = []
    seen: set[tuple[str, str]] = set()
    repeats: dict[tuple[str, str], list[Any]] = {}

    def once(key: str, lane: str) -> bool:
        if (key, lane) in seen:
            return False
        seen.add((key, lane))
        return True

    for row in df.itertuples(index=False):
        t, actor, kind, name, value = float(row.t_ms), row.actor, row.kind, row.name, row.value
        if kind == "user" and name == "click":
            side = row.detail if row.detail in _PEERS else ("callee" if value == "answer" else "caller")
            label = {"call": "Call", "answer": "Answer", "hangup": "Hang up"}.get(value, value)
            found.append(
                _Moment(t, side, f"{label} clicked", OKABE_ITO["purple"], f"click-{value}", "*", True)
            )
        elif kind == "user" and name == "prompt":
            side = row.detail if row.detail in _PEERS else "callee"
            found.append(_Moment(t, side, "incoming call", OKABE_ITO["purple"], "prompt", "*"))
        elif actor not in _PEERS and kind != "error":
            continue
        elif kind == "call" and name == "RTCPeerConnection" and value == "ok":
            if once("pc", actor):
                found.append(_Moment(t, actor, "RTCPeerConnection", _DARK, "pc", "s"))
        elif kind == "call" and name == "negotiationneeded":
            if once("nn", actor):
                found.append(_Moment(t, actor, "negotiationneeded", _DARK, "negotiationneeded"))
        elif kind == "signal" and name == "video-offer" and value == "sent":
            if once("offer", actor):
                found.append(_Moment(t, actor, "offer sent", OKABE_ITO["blue"], "offer-sent"))
        elif kind == "state" and name == "connectionState" and value in ("connected", "failed"):
            color = OKABE_ITO["green"] if value == "connected" else OKABE_ITO["vermillion"]
            if once(value, actor):
                found.append(_Moment(t, actor, value, color, value, "D", True))
        elif kind == "media" and name == "first-frame":
            if once("ff-" + value, actor):
                found.append(
                    _Moment(t, actor, f"first frame ({value})" if value else "first frame",
                            OKABE_ITO["green"], "first-frame", "D", True)
                )
        elif kind == "error":
            lane = actor if actor in _LANE_Y else "channel"
            text = f"{value or 'error'}" + (f" ({name})" if name else "")
            key = (lane, text)
            if key in repeats:  # the same error again: count it, do not stack another note
                repeats[key][1] += 1
                continue
            moment = _Moment(t, lane, text, OKABE_ITO["vermillion"], "error", "X", True)
            repeats[key] = [moment, 1]
            found.append(moment)
    for moment, count in repeats.values():
        if count > 1:
            moment.text += f" ×{count}"
    lost = df[(df["kind"] == "ice") & (df["name"] == "candidate") & (df["value"] == "lost")]
    for side in _PEERS:
        mine = lost[lost["actor"] == side]
        if len(mine):
            n = len(mine)
            found.append(
                _Moment(float(mine["t_ms"].iloc[0]), side, f"{n} candidate{'s' if n > 1 else ''} lost",
                        OKABE_ITO["vermillion"], "candidates-lost", "X", True)
            )
    return sorted(found, key=lambda m: m.t)


def _stack(
    ax: Axes, items: list[tuple[float, str]], fontsize: float, lo: float, hi: float
) -> list[tuple[int, str]]:
    """Greedy level assignment so texts that start at ``t`` do not overlap.

    Returns ``(level, ha)`` per item; a text that would cross the right edge
    grows to the left. Levels wrap after ``_MAX_LEVELS`` to keep the lanes tall.
    """
    span = hi - lo
    ends: list[float] = []
    out: list[tuple[int, str]] = []
    gap = 0.01 * span
    for t, text in items:
        width = _text_width_data(ax, text, fontsize, span) + 0.012 * span
        ha = "left" if t + width < hi or t < lo + 0.5 * span else "right"
        start, end = (t, t + width) if ha == "left" else (t - width, t)
        level = 0
        while level < len(ends) and ends[level] > start - gap:
            level += 1
        if level == len(ends):
            ends.append(end)
        else:
            ends[level] = end
        out.append((level % _MAX_LEVELS, ha))
    return out


def sequence(
    data: EventsLike,
    *,
    ax: Axes | None = None,
    annotate: bool = True,
    max_messages: int | None = None,
    label_candidates: int = 2,
    time_scale: str = "auto",
    zoom: bool | None = None,
) -> Axes:
    """Draw the signaling sequence diagram of one run.

    Three horizontal swimlanes (caller on top, the signaling channel in the
    middle, callee at the bottom) over a shared time axis. Each delivered
    message is one arrow from its sender's lane at send time to the
    receiver's lane at delivery time (a duplicated message gives two arrows);
    a message lost or refused by the channel is a line ending on the channel
    lane in a cross. Key moments (peer connection created, negotiationneeded,
    offer sent, user clicks, connected, first frame, errors in red) are
    written next to the lane of the side they happened on; caller notes above
    the caller lane, callee notes below the callee lane.

    Parameters
    ----------
    data
        An event frame (see :mod:`rtclab.trace`) or an object with ``.events``.
    ax
        Axes to draw on; a new projector-sized figure when ``None``.
    annotate
        Write the key moments on the lanes.
    max_messages
        Draw only the first ``max_messages`` messages (by send time) and say
        how many were left out; ``None`` draws all.
    label_candidates
        How many candidate arrows per sender get a ``cand`` label (the others
        stay unlabelled so that many candidates stay legible).
    time_scale
        ``"auto"`` (linear, or linear-then-log when a busy start is followed by a
        long quiet wait), ``"linear"`` or ``"symlog"``.
    zoom
        Draw an inset magnifying the first exchange (offer to answer): ``None``
        does so when that exchange takes less than a tenth of the time axis
        (a long run on a linear axis), ``True`` always, ``False`` never.

    Returns
    -------
    matplotlib.axes.Axes
        Arrows have gid ``msg:<ref>``; lost messages ``drop:<ref>`` /
        ``refuse:<ref>``; lanes ``lane:<actor>``; notes ``moment:<what>``;
        the zoom inset (a child axes) ``zoom:inset`` and the span it
        magnifies ``zoom:span``.

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "signal", "video-offer", "sent", ref="m1", t_ms=1)
    >>> tr.record("callee", "signal", "video-offer", "delivered", ref="m1", t_ms=21)
    >>> ax = sequence(tr.frame())
    >>> [p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("msg:")]
    ['msg:m1']
    """
    df = _events(data)
    own = ax is None
    ax = _new_axes(ax)
    lo, hi = _time_limits(df)
    ylo, yhi = -0.5, 2.5

    for lane, y in _LANE_Y.items():
        ax.axhline(
            y,
            color=OKABE_ITO["grey"] if lane == "channel" else _DARK,
            lw=1.2 if lane == "channel" else 2.0,
            ls="--" if lane == "channel" else "-",
            zorder=1,
            gid=f"lane:{lane}",
        )
    ax.set_yticks(list(_LANE_Y.values()), [k for k in _LANE_Y], fontsize=FS + 1, fontweight="bold")
    for label, lane in zip(ax.get_yticklabels(), _LANE_Y, strict=True):
        label.set_color(_SIDE_COLORS.get(lane, OKABE_ITO["grey"]))
    _format_time_axis(ax, lo, hi, df, time_scale)
    ax.set_title("Signaling: who sends what, and when it arrives", fontsize=FS_TITLE, loc="left")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)

    if df.empty:
        ax.set_ylim(ylo, yhi)
        return _no_events(ax)

    messages = _messages(df)
    hidden = 0
    if max_messages is not None and len(messages) > max_messages:
        hidden = len(messages) - max(max_messages, 0)
        messages = messages[: max(max_messages, 0)]

    labelled: dict[str, int] = {}
    used_types: dict[str, str] = {}
    boxes: list[tuple[float, float, float]] = []  # placed labels: (x0, x1, y)

    def free(x: float, y: float, text: str, fontsize: float) -> bool:
        half = 0.5 * _text_width_data(ax, text, fontsize, hi - lo)
        if any(abs(y - by) < 0.15 and x - half < bx1 and x + half > bx0 for bx0, bx1, by in boxes):
            return False
        boxes.append((x - half, x + half, y))
        return True

    for msg in messages:
        short = _short_type(msg.name, msg.ref)
        color = _MSG_COLORS.get(short, OKABE_ITO["purple"])
        sender = msg.sender if msg.sender in _LANE_Y else "channel"
        y0 = _LANE_Y[sender]
        is_cand = short in ("cand", "end")
        for i, (t_del, receiver) in enumerate(msg.delivered):
            t0 = msg.t_sent if msg.t_sent is not None else t_del
            y1 = _LANE_Y.get(receiver, _LANE_Y[_other(sender)] if sender in _PEERS else 0.0)
            arrow = FancyArrowPatch(
                (t0, y0),
                (t_del, y1),
                arrowstyle="-|>",
                mutation_scale=16 if not is_cand else 12,
                color=color,
                lw=2.2 if not is_cand else 1.2,
                alpha=1.0 if not is_cand else 0.8,
                shrinkA=0,
                shrinkB=1,
                zorder=3 if not is_cand else 2,
                gid=f"msg:{msg.ref}",
            )
            ax.add_patch(arrow)
            used_types.setdefault(short, color)
            count = labelled.get(f"{sender}:{short}", 0)
            frac = 0.5 if not is_cand else 0.3
            x_label = t0 + frac * (t_del - t0)
            y_label = y0 + frac * (y1 - y0) + (0.12 if not is_cand else 0.0)
            text = short if i == 0 else f"{short} (dup)"
            if (not is_cand or count < label_candidates) and (
                free(x_label, y_label, text, FS if not is_cand else FS_SMALL) or not is_cand
            ):
                labelled[f"{sender}:{short}"] = count + 1
                ax.text(
                    x_label,
                    y_label,
                    text,
                    fontsize=FS if not is_cand else FS_SMALL,
                    fontweight="bold" if not is_cand else "normal",
                    color=color,
                    ha="center",
                    va="center",
                    zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
                    gid=f"msglabel:{msg.ref}",
                )
        for t_lost, how, _detail in msg.lost:
            t0 = msg.t_sent if msg.t_sent is not None else t_lost
            lost_color = OKABE_ITO["vermillion"] if how == "drop" else OKABE_ITO["orange"]
            ax.plot(
                [t0, t_lost],
                [y0, _LANE_Y["channel"]],
                color=lost_color,
                lw=1.6,
                ls=":",
                zorder=3,
                gid=f"{how}line:{msg.ref}",
            )
            ax.plot(
                [t_lost],
                [_LANE_Y["channel"]],
                marker="X",
                ms=12,
                color=lost_color,
                mec="white",
                mew=0.8,
                ls="none",
                zorder=6,
                gid=f"{how}:{msg.ref}",
            )
            used_types.setdefault("dropped" if how == "drop" else "refused", lost_color)
            y_label = _LANE_Y["channel"] + 0.15
            if free(t_lost, y_label, short, FS_SMALL):
                ax.text(
                    t_lost, y_label, short, fontsize=FS_SMALL, color=lost_color, ha="center",
                    va="center", zorder=5, gid=f"{how}label:{msg.ref}",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85},
                )

    if annotate:
        moments = _moments(df)
        for lane in _LANE_Y:
            here = [m for m in moments if m.lane == lane]
            levels = _stack(ax, [(m.t, m.text) for m in here], FS_SMALL + 1, lo, hi)
            sign = {"caller": 1.0, "channel": -1.0, "callee": -1.0}[lane]
            for m, (level, ha) in zip(here, levels, strict=True):
                y_lane = _LANE_Y[lane]
                y_text = y_lane + sign * (_LEVEL_BASE + _LEVEL_STEP * level)
                if lane == "channel":
                    y_text = y_lane - 0.18 - 0.2 * level
                ax.plot(
                    [m.t], [y_lane], marker=m.marker, ms=11 if m.marker == "*" else 8,
                    color=m.color, ls="none", zorder=7, mec="white", mew=0.6,
                )
                ax.plot([m.t, m.t], [y_lane, y_text], color=m.color, lw=0.8, alpha=0.6, zorder=4)
                ax.text(
                    m.t,
                    y_text,
                    m.text,
                    fontsize=FS_SMALL + 1,
                    fontweight="bold" if m.bold else "normal",
                    color=m.color,
                    ha=ha,
                    va="center",
                    zorder=8,
                    bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.9},
                    gid=f"moment:{m.key}",
                )
                if lane == "caller":
                    yhi = max(yhi, y_text + 0.25)
                elif lane == "callee":
                    ylo = min(ylo, y_text - 0.25)
    ax.set_ylim(ylo, yhi)

    if zoom is not False:
        _zoom_first_exchange(ax, df, messages, lo, hi, force=bool(zoom))
    if hidden:
        ax.text(
            0.99, 0.02, f"+{hidden} more messages not drawn", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=FS_SMALL, color=OKABE_ITO["grey"],
        )
    if used_types:
        handles: list[Any] = []
        rank = ["offer", "answer", "cand", "end", "hang-up"]
        ordered = sorted(used_types.items(), key=lambda kv: (
            rank.index(kv[0]) if kv[0] in rank else (7 if kv[0] in ("dropped", "refused") else 6)))
        for short, color in ordered:
            if short in ("dropped", "refused"):
                handles.append(Line2D([], [], color=color, marker="X", ls=":", ms=10, label=short))
            else:
                handles.append(Line2D([], [], color=color, lw=2, label=short))
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=FS_SMALL,
            title="messages", title_fontsize=FS_SMALL, frameon=False,
        )
    if own:  # our own figure, at its final size: no two labels may overlap
        _declutter(ax.get_figure())  # type: ignore[arg-type]
    return ax


def _first_exchange(messages: list[_Message]) -> tuple[float, float] | None:
    """From the first message sent to the first answer's delivery (or the fourth message's)."""
    times = [(m.t_sent if m.t_sent is not None else min((t for t, _ in m.delivered), default=math.nan), m)
             for m in messages]
    times = [(t, m) for t, m in times if math.isfinite(t)]
    if not times:
        return None
    start = min(t for t, _ in times)
    ends = [min(t for t, _ in m.delivered) for _, m in times if m.delivered and _short_type(m.name, m.ref) == "answer"]
    if not ends:
        firsts = sorted(times, key=lambda tm: tm[0])[:4]
        ends = [max((t for t, _ in firsts[-1][1].delivered), default=firsts[-1][0])]
    end = min(ends)
    return (start, end) if end > start else None


def _zoom_first_exchange(ax: Axes, df: pd.DataFrame, messages: list[_Message], lo: float, hi: float, *, force: bool) -> None:
    """An inset between the lanes that magnifies the first exchange when it is squeezed."""
    span = _first_exchange(messages)
    if span is None or ax.get_xscale() != "linear":
        return
    t0, t1 = span
    pad = 0.15 * (t1 - t0) + 2.0
    z0, z1 = max(lo, t0 - pad), t1 + pad
    if not force and (z1 - z0) >= 0.1 * (hi - lo):
        return

    def frac(t: float) -> float:
        return (t - lo) / (hi - lo)

    # the widest stretch of time with no message arrow in it holds the inset
    busy: list[tuple[float, float]] = []
    for m in messages:
        for t in [t for t, _ in m.delivered] + [t for t, _h, _d in m.lost]:
            a = m.t_sent if m.t_sent is not None else t
            busy.append((frac(min(a, t)), frac(max(a, t))))
    busy.sort()
    free: list[tuple[float, float]] = []
    edge = frac(z1) + 0.02
    for b0, b1 in busy:
        if b0 > edge:
            free.append((edge, b0))
        edge = max(edge, b1)
    free.append((edge, 1.0))
    x0, x1 = max(free, key=lambda ab: ab[1] - ab[0])
    if x1 - x0 < 0.3:
        return
    y_of = ax.transLimits.transform
    ya, yb = y_of((lo, _LANE_Y["callee"] + 0.14))[1], y_of((lo, _LANE_Y["caller"] - 0.14))[1]
    width = min(0.5, x1 - x0 - 0.05)
    ins = ax.inset_axes([x0 + 0.5 * (x1 - x0 - width), ya, width, yb - ya], gid="zoom:inset")
    sequence(df, ax=ins, annotate=False, time_scale="linear", zoom=False)
    ins.set_xlim(z0, z1)
    ins.set_ylim(-0.35, 2.35)
    ins.set_title(f"zoom: the first exchange, {max(z0, 0.0):.0f}–{z1:.0f} ms", fontsize=FS_SMALL, loc="left")
    ins.set_xlabel("")
    ins.set_yticks([])
    ins.tick_params(labelsize=FS_SMALL - 1)
    legend = ins.get_legend()
    if legend is not None:
        legend.remove()
    for text in ins.texts:  # labels of messages outside the zoomed window
        if not z0 <= float(text.get_position()[0]) <= z1:
            text.set_visible(False)
    ins.patch.set_facecolor("white")
    for spine in ins.spines.values():
        spine.set_visible(True)
        spine.set_color(OKABE_ITO["grey"])
    ax.axvspan(z0, z1, color=OKABE_ITO["grey"], alpha=0.15, zorder=0, gid="zoom:span")


# --------------------------------------------------------------------------- states


_INSTANT_MARKER = "D"


def _offset(ax: Axes, dx_pt: float, dy_pt: float) -> Any:
    """A transform shifting by points (markers of one instant drawn side by side)."""
    from matplotlib.transforms import ScaledTranslation

    fig = ax.get_figure()
    assert fig is not None
    return ScaledTranslation(dx_pt / 72.0, dy_pt / 72.0, fig.dpi_scale_trans)


def _state_segments(
    df: pd.DataFrame, side: str, machine: str, t_end: float
) -> list[tuple[float, float, str]]:
    rows = df[(df["actor"] == side) & (df["kind"] == "state") & (df["name"] == machine)]
    start = _pc_created(df, side)
    segments: list[tuple[float, float, str]] = []
    if rows.empty:
        if start is None:
            return []
        return [(start, t_end, _INITIAL[machine])]
    first = rows.iloc[0]
    t_first = float(first["t_ms"])
    if start is None:
        start = t_first
    start = min(start, t_first)
    current = first["prev"] or (_INITIAL[machine] if start < t_first else "")
    t_cur = start
    for row in rows.itertuples(index=False):
        t = float(row.t_ms)
        if current and t > t_cur:
            segments.append((t_cur, t, current))
        current, t_cur = row.value, t
    if current:
        segments.append((t_cur, max(t_end, t_cur), current))
    return segments


def _instant_states(df: pd.DataFrame, side: str, machine: str, t_end: float) -> list[tuple[float, list[str]]]:
    """States entered and left at the same instant (no band width), grouped by time, in order.

    ``failed`` → ``closed`` in one step, or a rollback's ``stable`` between two
    offers: each lasted zero time, so :func:`states` marks them instead.
    """
    rows = df[(df["actor"] == side) & (df["kind"] == "state") & (df["name"] == machine)]
    t = rows["t_ms"].to_numpy(dtype=float)
    values = rows["value"].tolist()
    out: list[tuple[float, list[str]]] = []
    for i, value in enumerate(values):
        t_next = t[i + 1] if i + 1 < len(values) else max(t_end, t[i])
        if t_next <= t[i] and value:
            if out and out[-1][0] == t[i]:
                out[-1][1].append(value)
            else:
                out.append((float(t[i]), [value]))
    return out


def states(
    data: EventsLike,
    *,
    ax: Axes | None = None,
    actors: Sequence[str] = ("caller", "callee"),
    time_scale: str = "auto",
) -> Axes:
    """Draw the four state machines of each peer as coloured bands over time.

    One row per (peer, state machine): ``signaling``, ``ICE gathering``,
    ``ICE connection``, ``connection``. Each row is cut into segments, one per
    state, coloured by meaning (grey new, amber in progress, green stable /
    connected / complete, yellow disconnected, red failed, dark closed;
    Okabe–Ito colours) and named when the segment is wide enough. A row
    starts when the peer's ``RTCPeerConnection`` was created, so a peer
    connection created late shows as a late band. Errors are red crosses on
    the peer's row that matches where they happened.

    Parameters
    ----------
    data
        An event frame (see :mod:`rtclab.trace`) or an object with ``.events``.
    ax
        Axes to draw on; a new projector-sized figure when ``None``.
    actors
        The peers to draw, top to bottom.
    time_scale
        ``"auto"`` (linear, or linear-then-log when a busy start is followed by a
        long quiet wait), ``"linear"`` or ``"symlog"``.

    Returns
    -------
    matplotlib.axes.Axes
        Segments are rectangles with gid ``state:<actor>:<machine>:<state>``;
        a state that lasted zero time (``failed`` then ``closed`` at one
        instant, a rollback's ``stable``) is a diamond with gid
        ``instant:<actor>:<machine>:<state>`` and its name written above it
        (``instantlabel:<actor>:<machine>``); errors have gid ``error:<actor>``.

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "call", "RTCPeerConnection", "ok", t_ms=0)
    >>> tr.record("caller", "state", "connectionState", "connecting", prev="new", t_ms=40)
    >>> ax = states(tr.frame())
    >>> len(ax.get_yticks())
    8
    """
    df = _events(data)
    own = ax is None
    ax = _new_axes(ax)
    lo, hi = _time_limits(df)
    t_end = hi  # the last state of each machine lasts to the right edge
    span = hi - lo

    ticks: list[float] = []
    labels: list[str] = []
    row_y: dict[tuple[str, str], float] = {}
    y = 0.0
    for side in actors:
        for machine, short in MACHINES:
            row_y[(side, machine)] = y
            ticks.append(y)
            labels.append(f"{side} · {short}")
            y -= 1.0
        y -= 0.6
    height = 0.8

    _format_time_axis(ax, lo, hi, df, time_scale)
    ax.set_yticks(ticks, labels, fontsize=FS_SMALL + 1)
    for label, (side, _m) in zip(ax.get_yticklabels(), row_y, strict=True):
        label.set_color(_SIDE_COLORS.get(side, _DARK))
    ax.set_ylim(y, 0.6)
    ax.set_title("State machines of each peer", fontsize=FS_TITLE, loc="left")
    for spine in ("top", "right", "left"):
        ax.spines[spine].set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#E5E5E5", lw=0.8, zorder=0)
    ax.set_axisbelow(True)

    if df.empty:
        return _no_events(ax)

    for side in actors:
        drawn = False
        for machine, _short in MACHINES:
            yc = row_y[(side, machine)]
            for t0, t1, state in _state_segments(df, side, machine, t_end):
                width = max(t1 - t0, 0.0)
                color = STATE_COLORS.get(state, OKABE_ITO["sky"])
                ax.add_patch(
                    Rectangle(
                        (t0, yc - height / 2), width, height, facecolor=color,
                        edgecolor="white", lw=1.0, zorder=2,
                        gid=f"state:{side}:{machine}:{state}",
                    )
                )
                drawn = True
                if _text_width_data(ax, state, FS_SMALL, span) < 0.95 * width:
                    dark_bg = color in (_DARK, OKABE_ITO["blue"], OKABE_ITO["vermillion"],
                                        OKABE_ITO["green"])
                    ax.text(
                        t0 + width / 2, yc, state, ha="center", va="center", fontsize=FS_SMALL,
                        color="white" if dark_bg else "black", zorder=3, clip_on=True,
                        gid=f"bandlabel:{side}:{machine}:{state}",
                    )
            for t0, names in _instant_states(df, side, machine, t_end):
                # zero-length states: a marker per state, side by side, and their names above
                for k, state in enumerate(names):
                    ax.plot(
                        [t0], [yc], marker=_INSTANT_MARKER, ms=12, color=STATE_COLORS.get(state, OKABE_ITO["sky"]),
                        mec="black", mew=1.0, ls="none", zorder=4 + k, gid=f"instant:{side}:{machine}:{state}",
                        transform=ax.transData + _offset(ax, 7.0 * k, 0.0), clip_on=False,
                    )
                ax.text(
                    t0, yc, " → ".join(names) + " (0 ms)", ha="right", va="center", fontsize=FS_SMALL - 1,
                    color=_DARK, zorder=6, gid=f"instantlabel:{side}:{machine}",
                    transform=ax.transData + _offset(ax, -9.0, 0.0),
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": _DARK, "lw": 0.6, "alpha": 0.95},
                )
                drawn = True
        if not drawn:
            ys = [row_y[(side, m)] for m, _ in MACHINES]
            ax.text(
                lo + 0.5 * span, float(np.mean(ys)), f"{side}: no RTCPeerConnection",
                ha="center", va="center", fontsize=FS, color=OKABE_ITO["grey"],
                style="italic", gid=f"no-pc:{side}",
            )

        errors = df[(df["actor"] == side) & (df["kind"] == "error")]
        for k, row in enumerate(errors.itertuples(index=False)):
            machine = _error_machine(row.name)
            yc = row_y[(side, machine)]
            ax.plot(
                [row.t_ms], [yc], marker="X", ms=13, color=OKABE_ITO["vermillion"], mec="black",
                mew=0.8, ls="none", zorder=5, gid=f"error:{side}",
            )
            if k < 4:
                ax.text(
                    row.t_ms, yc + 0.2, f" {row.value or 'error'}", color=OKABE_ITO["vermillion"],
                    fontsize=FS_SMALL - 1, fontweight="bold", ha="left", va="center", zorder=6,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.9},
                    gid=f"errorlabel:{side}",
                )

    handles: list[Any] = [Patch(facecolor=c, label=lab) for lab, c in _STATE_LEGEND]
    handles.append(
        Line2D([], [], marker="X", color=OKABE_ITO["vermillion"], mec="black", ls="none",
               ms=11, label="error")
    )
    if any(str(a.get_gid() or "").startswith("instant:") for a in ax.lines):
        handles.append(Line2D([], [], marker=_INSTANT_MARKER, color="white", mec="black", ls="none",
                              ms=11, label="state of 0 ms"))
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=FS_SMALL,
        frameon=False,
    )
    if own:  # our own figure, at its final size: no two labels may overlap
        _declutter(ax.get_figure())  # type: ignore[arg-type]
    return ax


def _error_machine(where: str) -> str:
    if where in ("setRemoteDescription", "setLocalDescription", "createOffer", "createAnswer"):
        return "signalingState"
    if where in ("addIceCandidate",):
        return "iceConnectionState"
    return "connectionState"


# --------------------------------------------------------------------------- candidates


@dataclass
class _Candidate:
    ref: str
    owner: str
    typ: str
    steps: list[tuple[float, str]]  # (t, step) step in gathered/sent/delivered/dropped/...
    fate: str


_STEP_MARKERS = {
    "gathered": ("o", "gathered"),
    "sent": (">", "sent"),
    "delivered": ("v", "delivered"),
}


def _candidate_lives(df: pd.DataFrame) -> list[_Candidate]:
    ice = df[(df["kind"] == "ice") & (df["name"] == "candidate")]
    sig = df[(df["kind"] == "signal") & (df["name"] == "new-ice-candidate")]
    refs: list[str] = []
    for ref in list(ice["ref"]) + list(sig["ref"]):
        if ref and ref not in refs:
            refs.append(ref)
    lives: list[_Candidate] = []
    for ref in refs:
        owner = ref.split(":", 1)[0]
        steps: list[tuple[float, str]] = []
        typ = ""
        outcomes: set[str] = set()
        for row in ice[ice["ref"] == ref].itertuples(index=False):
            if row.value == "gathered" or (row.value == "end" and row.actor == owner):
                steps.append((float(row.t_ms), "gathered"))
                match = re.search(r"\btyp\s+(\w+)", row.detail)
                if match:
                    typ = match.group(1)
            elif row.value in ("added", "rejected", "lost", "late", "ignored"):
                # after end-of-candidates: "late" is added and used (Chromium), "ignored" dropped (RFC 8838)
                value = {"late": "added", "ignored": "lost"}.get(row.value, row.value)
                steps.append((float(row.t_ms), value))
                outcomes.add(value)
        for row in sig[sig["ref"] == ref].itertuples(index=False):
            if row.value in ("sent", "delivered"):
                steps.append((float(row.t_ms), row.value))
            elif row.value in ("dropped", "refused"):
                steps.append((float(row.t_ms), "dropped"))
                outcomes.add("dropped")
        if ref.endswith(":end"):
            typ = "end"
        steps.sort(key=lambda s: s[0])
        for fate in ("added", "rejected", "lost", "dropped"):
            if fate in outcomes:
                break
        else:
            fate = "pending"
        lives.append(_Candidate(ref, owner, typ, steps, fate))

    def order(c: _Candidate) -> tuple[int, int, float]:
        side = _PEERS.index(c.owner) if c.owner in _PEERS else 2
        first = c.steps[0][0] if c.steps else math.inf
        return (side, int(c.typ == "end"), first)

    return sorted(lives, key=order)


def candidates(data: EventsLike, *, ax: Axes | None = None, time_scale: str = "auto") -> Axes:
    """Draw the life of every ICE candidate: gathered → sent → delivered → fate.

    One row per candidate ref (the caller's first, then the callee's; each
    side's end-of-candidates last). The steps are markers joined by a line
    coloured by the candidate's fate at the receiving peer: added (green),
    lost (red, cross), rejected (orange), dropped by the channel (purple,
    cross) or pending (grey). Vertical lines mark, per side, when its
    ``RTCPeerConnection`` was created (dashed) and when its remote
    description was set (dotted): a candidate delivered before the receiver's
    lines is the timing trap made visible.

    Parameters
    ----------
    data
        An event frame (see :mod:`rtclab.trace`) or an object with ``.events``.
    ax
        Axes to draw on; a new projector-sized figure when ``None``.
    time_scale
        ``"auto"`` (linear, or linear-then-log when a busy start is followed by a
        long quiet wait), ``"linear"`` or ``"symlog"``.

    Returns
    -------
    matplotlib.axes.Axes
        Life lines have gid ``cand:<ref>`` and colour ``FATE_COLORS[fate]``;
        fate markers ``fate:<ref>``; reference lines ``vline:<side>:pc`` and
        ``vline:<side>:remote``.

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "ice", "candidate", "gathered", ref="caller:c1", t_ms=5)
    >>> tr.record("callee", "ice", "candidate", "lost", ref="caller:c1", t_ms=30)
    >>> ax = candidates(tr.frame())
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['caller:c1']
    """
    df = _events(data)
    lives = _candidate_lives(df)
    own = ax is None
    if ax is None:
        ax = _new_axes(None, (PROJECTOR_FIGSIZE[0], max(5.0, min(12.0, 2.5 + 0.4 * len(lives)))))
    # the time range of the candidates' lives and of the reference lines, not of the whole run
    marks = [t for c in lives for t, _ in c.steps]
    for side in _PEERS:
        marks += [t for t in (_pc_created(df, side), _remote_set(df, side)) if t is not None]
    lo, hi = _time_limits(pd.DataFrame({"t_ms": marks}) if marks else df)
    _format_time_axis(ax, lo, hi, df, time_scale)
    ax.set_title("ICE candidates: gathered → sent → delivered → fate", fontsize=FS_TITLE, loc="left")
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    if df.empty or not lives:
        ax.set_yticks([])
        return _no_events(ax, "no events" if df.empty else "no candidates")

    n = len(lives)
    fates_seen: list[str] = []
    steps_seen: set[str] = set()
    for i, cand in enumerate(lives):
        y = n - 1 - i
        color = FATE_COLORS[cand.fate]
        times = [t for t, _ in cand.steps]
        ax.plot(times, [y] * len(times), color=color, lw=2.5, zorder=2, gid=f"cand:{cand.ref}",
                solid_capstyle="round")
        for t, step in cand.steps:
            if step in _STEP_MARKERS:
                marker, _ = _STEP_MARKERS[step]
                ax.plot([t], [y], marker=marker, ms=8, color=color, mec="black", mew=0.5,
                        ls="none", zorder=3)
                steps_seen.add(step)
        final = [s for s in cand.steps if s[1] in ("added", "rejected", "lost", "dropped")]
        if final:
            t_f, _step = final[-1]
            marker = {"added": "o", "rejected": "s", "lost": "X", "dropped": "X"}[cand.fate]
            ax.plot([t_f], [y], marker=marker, ms=12, color=color, mec="black", mew=0.8,
                    ls="none", zorder=4, gid=f"fate:{cand.ref}")
        if cand.fate not in fates_seen:
            fates_seen.append(cand.fate)
    ylabels = [f"{c.ref}" + (f" ({c.typ})" if c.typ and c.typ != "end" else "") for c in lives]
    ax.set_yticks(list(range(n - 1, -1, -1)), ylabels, fontsize=FS_SMALL if n > 12 else FS_SMALL + 1)
    for label, cand in zip(ax.get_yticklabels(), lives, strict=True):
        label.set_color(_SIDE_COLORS.get(cand.owner, _DARK))
    ax.grid(axis="y", color="#EEEEEE", lw=0.8, zorder=0)

    # reference lines, labelled below the candidate rows (stacked so they never overlap)
    refs: list[tuple[float, str, str, str, str]] = []
    for side in _PEERS:
        for what, t, ls, text in (
            ("pc", _pc_created(df, side), "--", "RTCPeerConnection"),
            ("remote", _remote_set(df, side), ":", "remote description set"),
        ):
            if t is not None:
                refs.append((t, side, what, ls, f" {side}: {text}"))
    refs.sort(key=lambda r: r[0])
    levels = _stack(ax, [(t, text) for t, _s, _w, _l, text in refs], FS_SMALL, lo, hi)
    line_handles: list[Any] = []
    bottom = -0.8
    for (t, side, what, ls, text), (level, ha) in zip(refs, levels, strict=True):
        color = _SIDE_COLORS[side]
        step = 0.55 * max(1.0, n / 20)  # keep a text height between stacked labels
        y_text = -0.5 - step * (level + 0.8)
        bottom = min(bottom, y_text - 0.8 * step)
        ax.axvline(t, color=color, ls=ls, lw=2.0, zorder=1, gid=f"vline:{side}:{what}")
        ax.text(
            t, y_text, text if ha == "left" else text.strip() + " ", ha=ha, va="center",
            fontsize=FS_SMALL, color=color, zorder=5,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.9},
            gid=f"vlabel:{side}:{what}",
        )
        line_handles.append(Line2D([], [], color=color, ls=ls, lw=2, label=text.strip()))
    ax.set_ylim(bottom, n - 0.2 + 0.3)

    handles: list[Any] = []
    for fate in ("added", "lost", "rejected", "dropped", "pending"):
        if fate in fates_seen:
            marker = {"added": "o", "rejected": "s", "lost": "X", "dropped": "X", "pending": None}[fate]
            handles.append(Line2D([], [], color=FATE_COLORS[fate], lw=2.5, marker=marker, ms=10,
                                  mec="black", label=_FATE_LABELS[fate]))
    for step in ("gathered", "sent", "delivered"):
        if step in steps_seen:
            handles.append(Line2D([], [], color=OKABE_ITO["grey"], marker=_STEP_MARKERS[step][0],
                                  mec="black", ls="none", ms=8, label=step))
    ax.legend(handles=handles + line_handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
              fontsize=FS_SMALL, frameon=False)
    if own:  # our own figure, at its final size: no two labels may overlap
        _declutter(ax.get_figure())  # type: ignore[arg-type]
    return ax


# --------------------------------------------------------------------------- sweeps


def _metric_label(metric: str) -> str:
    if metric.endswith("_ms"):
        return metric[: -len("_ms")].replace("_", " ") + " (ms)"
    return metric.replace("_", " ")


def compare(
    sweep: pd.DataFrame,
    *,
    metric: str = "t_connected_ms",
    by: str = "flow",
    hue: str | None = None,
    ax: Axes | None = None,
    seed: int = 0,
) -> Axes:
    """Compare the distribution of a metric across groups of a sweep.

    A box plot per group with every trial drawn on top as a jittered point
    (seeded, so the picture is the same every time). Non-finite values (a
    trial that never connected has no connect time) are skipped; each group
    says ``n=<with a value>/<trials>``, and the axis label explains it. With
    ``hue`` (a swept parameter, e.g. ``"signaling_latency_ms"``) each group is
    split into one coloured box per value of that column, side by side, so a
    trend along the parameter stays visible instead of being pooled.

    Parameters
    ----------
    sweep
        A sweep frame: one row per trial, with columns ``metric`` and ``by``.
    metric
        The numeric column to compare.
    by
        The column whose values form the groups (in order of first appearance).
    hue
        A second column: one box per value inside each group (sorted), with a
        legend; ``None`` pools every trial of a group into one box.
    ax
        Axes to draw on; a new projector-sized figure when ``None``.
    seed
        Seed of the horizontal jitter.

    Returns
    -------
    matplotlib.axes.Axes
        Points have gid ``strip:<group>`` (``strip:<group>:<hue value>`` with ``hue``).

    Examples
    --------
    >>> import pandas as pd
    >>> sw = pd.DataFrame({"flow": ["basic", "basic", "vanilla"],
    ...                    "t_connected_ms": [40.0, 55.0, float("nan")]})
    >>> ax = compare(sw)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['basic\\nn=2/2', 'vanilla\\nn=0/1']
    >>> sw["signaling_latency_ms"] = [10, 200, 10]
    >>> ax = compare(sw, hue="signaling_latency_ms")
    >>> ax.get_legend().get_title().get_text()
    'signaling latency (ms)'
    """
    frame = _sweep(sweep)
    ax = _new_axes(ax)
    for col in (metric, by) + ((hue,) if hue is not None else ()):
        if col not in frame.columns:
            raise ValueError(f"sweep frame has no column {col!r}; columns: {list(frame.columns)}")
    ax.set_ylabel(_metric_label(metric), fontsize=FS)
    ax.set_xlabel(f"{by}    (n = trials with a value / trials run)", fontsize=FS)
    title = f"{_metric_label(metric)} by {by}" + (f" and {_metric_label(hue)}" if hue is not None else "")
    ax.set_title(title, fontsize=FS_TITLE, loc="left")
    ax.tick_params(labelsize=FS_SMALL + 1)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    if frame.empty:
        return _no_events(ax, "no trials")

    values = pd.to_numeric(frame[metric], errors="coerce").astype("float64")
    groups = list(dict.fromkeys(frame[by].tolist()))
    hues: list[Any] = [None]
    if hue is not None:
        hues = sorted(dict.fromkeys(frame[hue].tolist()), key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v)))
    rng = np.random.default_rng(seed)
    palette = [OKABE_ITO[k] for k in ("blue", "orange", "green", "purple", "sky", "vermillion",
                                      "yellow", "black")]
    slot = 0.8 / len(hues)
    boxes: list[tuple[float, np.ndarray, str, str]] = []  # (position, values, colour, gid)
    labels: list[str] = []
    for gi, g in enumerate(groups):
        in_group = (frame[by] == g).to_numpy()
        v_all = values[in_group].to_numpy()
        labels.append(f"{g}\nn={int(np.isfinite(v_all).sum())}/{len(v_all)}")
        for hi_, h in enumerate(hues):
            mask = in_group if h is None else in_group & (frame[hue] == h).to_numpy()
            if hue is not None and not mask.any():
                continue
            v = values[mask].to_numpy()
            pos = gi + 1 + (hi_ - (len(hues) - 1) / 2) * slot
            color = palette[(gi if h is None else hi_) % len(palette)]
            gid = f"strip:{g}" if h is None else f"strip:{g}:{_fmt_param(h)}"
            boxes.append((pos, v, color, gid))
            if hue is not None:
                ax.text(pos, 0.0, f"{int(np.isfinite(v).sum())}/{len(v)}", transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=FS_SMALL - 2, color=OKABE_ITO["grey"], gid=f"n:{gid}")
    finite = [(pos, v[np.isfinite(v)], color, gid) for pos, v, color, gid in boxes]
    nonempty = [b for b in finite if len(b[1])]
    width = min(0.5, 0.8 * slot)
    if nonempty:
        ax.boxplot(
            [b[1] for b in nonempty],
            positions=[b[0] for b in nonempty],
            widths=width,
            showfliers=False,
            patch_artist=True,
            boxprops={"facecolor": "#F2F2F2", "edgecolor": _DARK},
            medianprops={"color": _DARK, "lw": 2.5},
            whiskerprops={"color": _DARK},
            capprops={"color": _DARK},
            manage_ticks=False,
        )
    for pos, d, color, gid in finite:
        if len(d):
            x = pos + rng.uniform(-0.36 * width, 0.36 * width, size=len(d))
            ax.scatter(x, d, s=36 if hue is None else 26, color=color, alpha=0.8, edgecolor="white",
                       lw=0.5, zorder=3, gid=gid)
        else:
            ax.text(pos, 0.5, "no value", transform=ax.get_xaxis_transform(),
                    ha="center", va="center", fontsize=FS_SMALL, color=OKABE_ITO["grey"],
                    rotation=90)
    positions = np.arange(1, len(groups) + 1)
    ax.set_xticks(positions, labels)
    ax.set_xlim(0.4, len(groups) + 0.6)
    ax.grid(axis="y", color="#E5E5E5", lw=0.8)
    ax.set_axisbelow(True)
    if not nonempty:
        ax.set_ylim(0, 1)
    if hue is not None:
        handles = [Line2D([], [], color=palette[i % len(palette)], marker="o", ls="none", ms=8, label=_fmt_param(h))
                   for i, h in enumerate(hues)]
        ax.legend(handles=handles, title=_metric_label(hue), loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  fontsize=FS_SMALL, title_fontsize=FS_SMALL, frameon=False)
    return ax


def heatmap(
    sweep: pd.DataFrame,
    *,
    x: str,
    y: str,
    value: str = "outcome",
    success: Any = "connected",
    ax: Axes | None = None,
) -> Axes:
    """Success rate of a sweep over two swept parameters, as annotated cells.

    Each cell is the fraction of trials at that ``(x, y)`` whose ``value``
    equals ``success`` (``success=None`` averages a numeric ``value``
    column instead), written in the cell with the number of trials.

    Parameters
    ----------
    sweep
        A sweep frame: one row per trial.
    x, y
        Columns of the two swept parameters (cells sorted by their values).
    value
        The column compared with ``success``.
    success
        The value that counts as a success; ``None`` to average ``value``.
    ax
        Axes to draw on; a new projector-sized figure when ``None``.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> sw = pd.DataFrame({"loss": [0, 0, 0.2, 0.2], "answer_delay_ms": [0, 0, 0, 0],
    ...                    "outcome": ["connected", "connected", "failed", "connected"]})
    >>> ax = heatmap(sw, x="loss", y="answer_delay_ms")
    >>> sorted(t.get_text().split()[0] for t in ax.texts)
    ['100%', '50%']
    """
    frame = _sweep(sweep)
    ax = _new_axes(ax, (10.0, 6.5))
    for col in (x, y, value):
        if col not in frame.columns:
            raise ValueError(f"sweep frame has no column {col!r}; columns: {list(frame.columns)}")
    label = f"fraction {value} = {success}" if success is not None else f"mean {value}"
    ax.set_title(f"{'success rate' if success is not None else label} over {y} × {x}",
                 fontsize=FS_TITLE, loc="left")
    ax.set_xlabel(x, fontsize=FS)
    ax.set_ylabel(y, fontsize=FS)
    ax.tick_params(labelsize=FS_SMALL + 1)
    if frame.empty:
        return _no_events(ax, "no trials")

    if success is None:
        score = pd.to_numeric(frame[value], errors="coerce").astype("float64")
    else:
        score = (frame[value] == success).astype("float64")
    work = pd.DataFrame({"x": frame[x].to_numpy(), "y": frame[y].to_numpy(), "s": score.to_numpy()})
    rate = work.pivot_table(index="y", columns="x", values="s", aggfunc="mean", dropna=False)
    count = work.pivot_table(index="y", columns="x", values="s", aggfunc="size", dropna=False)
    count = count.reindex(index=rate.index, columns=rate.columns)
    grid = rate.to_numpy(dtype="float64")
    finite = grid[np.isfinite(grid)]
    vmin, vmax = (0.0, 1.0) if success is not None or not len(finite) else (
        float(finite.min()), float(finite.max()))
    image = ax.imshow(grid, cmap="cividis", vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
    for (i, j), v in np.ndenumerate(grid):
        n = count.iat[i, j]
        if not np.isfinite(v):
            continue
        txt = f"{v:.0%}" if success is not None else f"{v:.3g}"
        rel = (v - vmin) / (vmax - vmin) if vmax > vmin else 1.0
        ax.text(j, i, f"{txt}\nn={int(n) if pd.notna(n) else 0}", ha="center", va="center",
                fontsize=FS, fontweight="bold", color="black" if rel > 0.55 else "white",
                gid=f"cell:{i}:{j}")
    ax.set_xticks(range(len(rate.columns)), [_fmt_param(c) for c in rate.columns])
    ax.set_yticks(range(len(rate.index)), [_fmt_param(c) for c in rate.index])
    fig = ax.get_figure()
    assert fig is not None
    cbar = fig.colorbar(image, ax=ax)
    cbar.set_label("success rate" if success is not None else label, fontsize=FS)
    cbar.ax.tick_params(labelsize=FS_SMALL)
    return ax


def _fmt_param(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# --------------------------------------------------------------------------- figures


def summary(data: EventsLike, *, figsize: tuple[float, float] | None = None, time_scale: str = "auto") -> Figure:
    """Sequence diagram above the state bands, on one shared time axis.

    This backs ``Run.plot()``. When ``data`` has ``flow`` / ``outcome``
    attributes (a Run), they are written in the figure title.

    Parameters
    ----------
    data
        An event frame (see :mod:`rtclab.trace`) or an object with ``.events``.
    figsize
        Figure size in inches; projector-sized by default.
    time_scale
        ``"auto"`` (linear, or linear-then-log when a busy start is followed by a
        long quiet wait), ``"linear"`` or ``"symlog"``.

    Returns
    -------
    matplotlib.figure.Figure
        With two Axes: the sequence diagram, then the states.

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "call", "RTCPeerConnection", "ok", t_ms=0)
    >>> len(summary(tr.frame()).axes)
    2
    """
    with plt.rc_context(_RC):
        interactive = matplotlib.is_interactive()
        fig, (top, bottom) = plt.subplots(
            2, 1, sharex=True, figsize=figsize or (14.0, 11.0), layout="constrained",
            gridspec_kw={"height_ratios": [3, 2]},
        )
    _keep_interactive(interactive or matplotlib.is_interactive())
    sequence(data, ax=top, time_scale=time_scale)
    states(data, ax=bottom, time_scale=time_scale)
    top.set_xlabel("")
    top.tick_params(axis="x", labelbottom=True)
    parts = [str(getattr(data, a)) for a in ("flow", "outcome") if getattr(data, a, None)]
    if parts:
        fig.suptitle(" — ".join(parts), fontsize=FS_TITLE + 2, fontweight="bold")
    _declutter(fig)
    return fig


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def gallery(out_dir: str | Path, runs: Mapping[str, EventsLike], *, dpi: int = 110) -> list[Path]:
    """Write sequence, states, candidates and summary PNGs for each named run.

    Files are ``<out_dir>/<name>-<plot>.png``; figures are closed after saving.

    Parameters
    ----------
    out_dir
        Directory to write into (created if needed).
    runs
        Name → event frame or Run.
    dpi
        Resolution of the PNG files.

    Returns
    -------
    list of pathlib.Path
        The files written, four per run, in ``runs`` order.

    Examples
    --------
    >>> import tempfile
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "call", "RTCPeerConnection", "ok", t_ms=0)
    >>> [p.name for p in gallery(tempfile.mkdtemp(), {"tiny": tr.frame()})][:2]
    ['tiny-sequence.png', 'tiny-states.png']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, run in runs.items():
        stem = _safe_name(str(name))
        for kind, fig in _gallery_figures(run):
            written.append(_save(fig, out / f"{stem}-{kind}.png", dpi))
    return written


def _gallery_figures(run: EventsLike) -> Any:
    """The gallery's four figures of one run, one at a time: ``(kind, figure)``."""
    for kind, draw in (("sequence", sequence), ("states", states), ("candidates", candidates)):
        fig = draw(run).get_figure()
        assert isinstance(fig, Figure)
        yield kind, fig
    yield "summary", summary(run)


def overlapping_texts(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of drawn texts of ``fig`` whose boxes intersect (their background boxes included).

    Every text counts: notes and labels in the axes, tick labels, titles,
    axis labels, legends. The plots of this module lay their labels out so
    that this is empty for their own figures.

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "call", "RTCPeerConnection", "ok", t_ms=0)
    >>> overlapping_texts(summary(tr.frame()))
    []
    """
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    texts = _fixed_texts(fig) + [t for ax in _all_axes(fig) for t in ax.texts if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), _text_box(t, renderer)) for t in texts]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if _boxes_overlap(ba, bb, pad=-0.5)]


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    try:
        fig.savefig(path, dpi=dpi, facecolor="white")
    finally:
        plt.close(fig)
    return path



def beside(
    left: EventsLike,
    right: EventsLike,
    *,
    plot: str = "sequence",
    titles: tuple[str, str] = ("rtclab", "Chromium"),
    figsize: tuple[float, float] | None = None,
    time_scale: str = "auto",
) -> Figure:
    """Two runs side by side with the same plot: rtclab's run and a browser's, typically.

    The course uses it to put what rtclab's emulated peers did next to a
    stored Chromium trace of the same steps (``rtclab.data.chromium_trace``).

    Parameters
    ----------
    left, right
        Event frames (or objects with ``.events``); ``left`` goes on the left.
    plot
        ``"sequence"``, ``"states"`` or ``"candidates"``.
    titles
        One title per side.
    figsize
        Figure size in inches; two projector-sized panels by default.
    time_scale
        Passed to the plot function (``"auto"``, ``"linear"`` or ``"symlog"``).

    Returns
    -------
    matplotlib.figure.Figure
        With two Axes, left and right.

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "call", "RTCPeerConnection", "ok", t_ms=0)
    >>> fig = beside(tr.frame(), tr.frame(), plot="states")
    >>> [ax.get_title(loc="left").splitlines()[0] for ax in fig.axes][:2]
    ['rtclab', 'Chromium']
    """
    draw = {"sequence": sequence, "states": states, "candidates": candidates}.get(plot)
    if draw is None:
        raise ValueError(f"plot must be 'sequence', 'states' or 'candidates', not {plot!r}")
    with plt.rc_context(_RC):
        interactive = matplotlib.is_interactive()
        fig, axes = plt.subplots(1, 2, figsize=figsize or (20.0, 7.0), layout="constrained")
    _keep_interactive(interactive or matplotlib.is_interactive())
    for ax, data, title in zip(axes, (left, right), titles):
        draw(data, ax=ax, time_scale=time_scale)
        ax.set_title(f"{title}\n{ax.get_title(loc='left')}", fontsize=FS_TITLE, loc="left")
    _declutter(fig)  # two panels at their final size: their labels are placed as in a single plot
    return fig
