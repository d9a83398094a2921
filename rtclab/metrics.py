"""Outcome and metrics of a run, derived from its event frame alone.

Because they read nothing but the frame, they work as well on a CSV loaded
with :func:`rtclab.load` as on a live run. They are computed in plain Python
over the frame's rows (a run's result is built from its recorded tuples before
any frame exists: :func:`metrics_from_rows`), so the same code gives the same
values either way.

Outcomes
--------
``connected``
    both peers reached ``connectionState == "connected"`` and, for media
    flows, every remote track announced at either end produced a frame.
``no-media``
    the negotiation ended without media: connected without frames, or both
    sides ``stable`` with descriptions that negotiate no media section.
``failed``
    a peer reached ``connectionState == "failed"``, or an API call failed and
    the call never connected.
``declined``
    the callee's user clicked *Decline* (``decision="decline"``) and the
    apps ended the call.
``timeout``
    the deadline came first, with no failure recorded.
``error``
    the runner itself failed (a bug or a simulation stall), see ``reason``.

Answer to media
---------------
``answer_to_media_{caller,callee}_ms`` is, per side, the time from the
user's *Answer* click to that side's first decoded frame (``0`` when the frame
came before the click); ``answer_to_media_ms`` is the larger, i.e. the moment
media flows both ways. In ``article`` the callee already receives the
caller's video while it rings, so the caller's side decides: the callee's
renegotiation (its offer, the caller's answer: one round trip, no new
candidates) plus the first frame of its camera. In ``counteroffer`` the
caller's camera is gated until ``call-accepted`` arrives, so the callee's side
is one signaling trip later than the caller's.

What answering cost is counted too: ``messages_after_answer`` (signaling
messages sent from the click on) and ``candidates_after_answer`` (candidates
gathered from the click on); both are NaN when nobody clicked *Answer*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from .trace import ACTORS, COLUMNS, KINDS, Trace

__all__ = ["compute_metrics", "exposed_candidates", "finalize_candidates", "metrics_from_rows", "outcome"]

SIDES = ("caller", "callee")


#: a row as the metrics read it: (t_ms, actor, kind, name, value, prev, ref, detail)
_Row = Sequence[Any]
_NAN = math.nan
_ACTOR_SET = frozenset(ACTORS)
_KIND_SET = frozenset(KINDS)


def _frame_rows(events: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The frame's rows as plain tuples, in frame order."""
    if len(events) == 0:
        return []
    return list(zip(*(events[c].tolist() for c in COLUMNS)))


def _actor_order(events: pd.DataFrame) -> list[Any]:
    """The order in which a groupby on ``actor`` lists actors (category order)."""
    actor = events["actor"]
    if isinstance(actor.dtype, pd.CategoricalDtype):
        return list(actor.cat.categories)
    return sorted(set(actor.dropna().tolist()))


def outcome(events: pd.DataFrame, *, media: bool = True) -> tuple[str, str]:
    """``(outcome, reason)`` of a run, from its frame.

    Examples
    --------
    >>> from rtclab.trace import empty_frame
    >>> outcome(empty_frame())
    ('timeout', 'nothing happened')
    """
    return _outcome(_frame_rows(events), media, _actor_order(events))


def _outcome(rows: Sequence[_Row], media: bool, actor_order: Sequence[Any]) -> tuple[str, str]:
    if not rows:
        return "timeout", "nothing happened"
    connected: set[str] = set()
    failed_actor: Any = None
    runner: _Row | None = None
    api_error: _Row | None = None
    tracks: dict[Any, set[str]] = {}
    frames: set[tuple[Any, str]] = set()
    hangup = False
    declined = False
    lost: list[_Row] = []
    for row in rows:
        _t, actor, kind, name, value = row[:5]
        if kind == "state":
            if name == "connectionState":
                if value == "connected" and actor in SIDES:
                    connected.add(actor)
                elif value == "failed" and failed_actor is None:
                    failed_actor = actor
        elif kind == "error":
            if name == "runner":
                if runner is None:
                    runner = row
            elif name != "deadline" and api_error is None:
                api_error = row
        elif kind == "media":
            if name == "track":
                tracks.setdefault(actor, set()).add(value)
            elif name == "first-frame":
                frames.add((actor, value))
        elif kind == "user":
            if name == "click" and value == "hangup":
                hangup = True
            elif name == "click" and value == "decline":
                declined = True
        elif kind == "ice" and name == "candidate" and value == "lost":
            lost.append(row)
    if runner is not None:
        return "error", f"{runner[4]}: {runner[7]}"[:200]
    if declined:
        return "declined", "the callee's user declined the call"
    if connected == set(SIDES):
        if not media:
            return "connected", "both peers connected"
        if not tracks:
            return "no-media", "connected, but no media track was negotiated"
        missing = [f"{a} {k}" for a in SIDES for k in tracks.get(a, ()) if (a, k) not in frames]
        if missing:
            return "no-media", "connected, but no frame received: " + ", ".join(sorted(missing))
        return "connected", "media flows both ways" if all(a in tracks for a in SIDES) else "media flows one way"
    if hangup:
        return "failed", "hung up by the user before the call connected"
    if _nothing_negotiated(rows):
        return "no-media", "nothing to negotiate: the offer was created before any track was added"
    if failed_actor is not None:
        who = failed_actor
        if lost:
            return "failed", f"candidates lost before peer connection existed ({_n_lost(lost)}); {who} ICE failed"
        if api_error is not None:
            return "failed", f"{api_error[4]} in {api_error[3]}; {who} connection failed"
        return "failed", f"{who} connection failed (ICE found no working pair)"
    if api_error is not None:
        return "failed", f"{api_error[4]} in {api_error[3]}"
    if lost:
        return "timeout", f"candidates lost before peer connection existed ({_n_lost(lost)}); deadline reached while {_where(rows, actor_order)}"
    return "timeout", "deadline reached while " + _where(rows, actor_order)


def _n_lost(lost: Sequence[_Row]) -> str:
    n = sum(1 for r in lost if not r[6].endswith(":end"))
    end = " and end-of-candidates" if any(r[6].endswith(":end") for r in lost) else ""
    return f"{n} lost{end}"


def _where(rows: Sequence[_Row], actor_order: Sequence[Any]) -> str:
    deadline = next((r[0] for r in rows if r[2] == "error" and r[3] == "deadline"), None)
    if deadline is not None:  # the state at the deadline, not after the clean-up that follows it
        rows = [r for r in rows if r[0] < deadline]
    last: dict[Any, str] = {}
    made: set[Any] = set()
    for r in rows:
        if r[2] == "state" and r[3] == "iceConnectionState":
            last[r[1]] = r[4]
        elif r[2] == "call" and r[3] == "RTCPeerConnection":
            made.add(r[1])
    actors = [a for a in SIDES if a in made or a in last]
    if actors:
        # a peer connection whose ICE never left "new" has no state row (no remote candidate came)
        return ", ".join(f"{a} ICE {last.get(a, 'new')}" for a in actors)
    return "nothing connected"


def _nothing_negotiated(rows: Sequence[_Row]) -> bool:
    srd = [r for r in rows if r[2] == "call" and r[3] == "setRemoteDescription" and r[4] == "ok"]
    if not set(SIDES) <= {r[1] for r in srd}:
        return False
    return all("m=[]" in r[7] for r in srd)


def finalize_candidates(trace: Trace) -> None:
    """Record ``lost`` rows for candidates delivered but never added nor rejected.

    The row is placed at the delivery time, with the reason: no peer connection
    existed yet at the receiver, or the app ignored it.
    """
    rows = trace.rows
    fate: dict[tuple[str, str], str] = {}
    delivered: dict[tuple[str, str], float] = {}
    created: dict[str, float] = {}
    for t, actor, kind, name, value, _prev, ref, _detail in rows:
        if kind == "call" and name == "RTCPeerConnection" and actor not in created:
            created[actor] = t
        elif kind == "signal" and name == "new-ice-candidate" and value == "delivered" and ref:
            delivered.setdefault((actor, ref), t)
        elif kind == "ice" and name == "candidate" and value in ("added", "late", "ignored", "rejected", "lost"):
            fate[(actor, ref)] = value
    for (actor, ref), t in sorted(delivered.items(), key=lambda kv: kv[1]):
        if (actor, ref) in fate:
            continue
        pc_at = created.get(actor)
        reason = "no peer connection yet" if pc_at is None or pc_at > t else "ignored by the app"
        trace.record(actor, "ice", "candidate", "lost", ref=ref, detail=reason, t_ms=t)


def compute_metrics(events: pd.DataFrame, *, media: bool = True) -> pd.Series:
    """The metrics of DESIGN §7 as a Series (NaN where a run has no such moment).

    Examples
    --------
    >>> from rtclab.trace import empty_frame
    >>> m = compute_metrics(empty_frame())
    >>> m["outcome"], m["candidates_gathered"]
    ('timeout', 0)
    """
    return pd.Series(_metrics(_frame_rows(events), media, _actor_order(events)), dtype=object)


def metrics_from_rows(rows: Iterable[_Row], *, media: bool = True) -> pd.Series:
    """:func:`compute_metrics` of the frame these rows make, without building it.

    ``rows`` are :class:`~rtclab.trace.Trace` rows (``Trace.rows``) in any
    order; they are read in frame order (stable sort by ``t_ms``).

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "call", "createOffer", "ok")
    >>> metrics_from_rows(tr.rows).equals(compute_metrics(tr.frame()))
    True
    """
    ordered = sorted(rows, key=_by_time)
    if any(r[1] not in _ACTOR_SET or r[2] not in _KIND_SET for r in ordered):
        # as in the frame, where a name outside the schema's categories is missing (NaN)
        ordered = [(r[0], r[1] if r[1] in _ACTOR_SET else _NAN, r[2] if r[2] in _KIND_SET else _NAN, *r[3:]) for r in ordered]
    return pd.Series(_metrics(ordered, media, ACTORS), dtype=object)


def _by_time(row: _Row) -> float:
    return row[0]


def _metrics(rows: Sequence[_Row], media: bool, actor_order: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["outcome"], out["reason"] = _outcome(rows, media, actor_order)
    connected_at: dict[Any, float] = {}
    first_frame: dict[Any, float] = {}
    t_answer, answered = _NAN, False
    gather_start: dict[Any, float] = {}
    gather_end: dict[Any, float] = {}
    fates: dict[str, set[str]] = {"gathered": set(), "added": set(), "lost": set(), "rejected": set()}
    cand_msgs: dict[str, set[str]] = {"sent": set(), "delivered": set()}
    messages = {"sent": 0, "delivered": 0, "dropped": 0}
    errors = 0
    selected: dict[Any, str] = {}
    first_selected: str | None = None
    t_max = _NAN
    for row in rows:
        t, actor, kind, name, value = row[:5]
        if t == t and not t_max >= t:  # NaN-skipping max, as pandas' Series.max
            t_max = t
        if kind == "state":
            if name == "connectionState":
                if value == "connected" and actor not in connected_at:
                    connected_at[actor] = t
            elif name == "iceGatheringState":
                if value == "gathering":
                    gather_start.setdefault(actor, t)
                elif value == "complete":
                    gather_end.setdefault(actor, t)
        elif kind == "media":
            if name == "first-frame" and t == t:
                prev_t = first_frame.get(actor)
                if prev_t is None or t < prev_t:
                    first_frame[actor] = t
        elif kind == "user":
            if name == "click" and value == "answer" and not answered:
                t_answer, answered = t, True
        elif kind == "ice":
            if name == "candidate":
                ref = row[6]
                if value == "late":  # a candidate after end-of-candidates, used as Chromium does
                    value = "added"
                if value in fates and not ref.endswith(":end"):
                    fates[value].add(ref)
            elif name == "selected-pair":
                if first_selected is None:
                    first_selected = str(value)
                selected.setdefault(actor, str(value))
        elif kind == "signal":
            if value in messages:
                messages[value] += 1
            if name == "new-ice-candidate" and value in cand_msgs and not row[6].endswith(":end"):
                cand_msgs[value].add(row[6])
        elif kind == "error":
            errors += 1
    per_side = [connected_at.get(a, _NAN) for a in SIDES]
    out["t_connected_ms"] = max(per_side) if all(not math.isnan(x) for x in per_side) else _NAN
    ff = [first_frame.get(a, _NAN) for a in SIDES]
    out["t_first_frame_ms"] = max(ff) if all(not math.isnan(x) for x in ff) else _NAN
    for a, v in zip(SIDES, ff):
        out[f"t_first_frame_{a}_ms"] = v
    out["t_answer_click_ms"] = t_answer
    a2m = []
    for a, v in zip(SIDES, ff):
        val = _NAN if math.isnan(t_answer) or math.isnan(v) else max(v, t_answer) - t_answer
        out[f"answer_to_media_{a}_ms"] = val
        a2m.append(val)
    out["answer_to_media_ms"] = max(a2m) if not any(math.isnan(x) for x in a2m) else _NAN
    # what answering cost: signaling messages sent and candidates gathered from the click on
    if math.isnan(t_answer):
        out["messages_after_answer"] = out["candidates_after_answer"] = _NAN
    else:
        out["messages_after_answer"] = sum(1 for r in rows if r[2] == "signal" and r[4] == "sent" and r[0] >= t_answer)
        out["candidates_after_answer"] = len({r[6] for r in rows if r[2] == "ice" and r[3] == "candidate" and r[4] == "gathered"
                                              and not r[6].endswith(":end") and r[0] >= t_answer})
    g = []
    for a in SIDES:
        s = gather_start.get(a, _NAN)
        e = gather_end.get(a, _NAN)
        if not math.isnan(s) and not math.isnan(e):
            g.append(e - s)
    out["gathering_ms"] = max(g) if g else _NAN
    for fate in ("gathered", "added", "lost", "rejected"):
        out[f"candidates_{fate}"] = len(fates[fate])
    out["candidates_sent"] = len(cand_msgs["sent"])
    out["candidates_delivered"] = len(cand_msgs["delivered"])
    for v in ("sent", "delivered", "dropped"):
        out[f"messages_{v}"] = messages[v]
    out["errors"] = errors
    out["selected_pair"] = first_selected if first_selected is not None else ""
    for a in SIDES:  # local/remote candidate types as each side sees its pair
        out[f"selected_pair_{a}"] = selected.get(a, "")
    out["duration_ms"] = float(t_max) if rows else 0.0
    for key, val in out.items():
        if isinstance(val, float) and not math.isnan(val):
            out[key] = round(val, 3)
    return out


_EXPOSED_COLUMNS = ["t_ms", "candidate", "type", "address", "related", "before_decision"]


def exposed_candidates(events: Any, *, side: str = "callee") -> pd.DataFrame:
    """The candidates of ``side`` that reached the other side, and whether before its user decided.

    A candidate carries an address of the host it was gathered on (RFC 8828
    is about which of them a page may reveal): a host candidate the local
    address, a server-reflexive one the NAT's public address, a relay one
    only the TURN server's. This lists every candidate of ``side`` whose
    ``new-ice-candidate`` message was *delivered* to the other app, at the
    delivery time, with ``before_decision`` telling whether that was before
    ``side``'s user clicked *Answer* or *Decline* (``True`` when the user
    never did). Read from the frame alone.

    Parameters
    ----------
    events
        A run's frame (or the :class:`rtclab.Run`).
    side
        Whose addresses: ``"callee"`` (default) or ``"caller"``.

    Returns
    -------
    pandas.DataFrame
        One row per delivered candidate: ``t_ms``, ``candidate`` (its ref),
        ``type`` (``host``/``srflx``/``prflx``/``relay``), ``address``
        (``ip:port``), ``related`` (the ``raddr`` shown, if any) and
        ``before_decision``.

    Examples
    --------
    >>> import rtclab
    >>> run = rtclab.run("counteroffer", topology="nat")  # doctest: +SKIP
    >>> exposed_candidates(run).query("before_decision")["type"].tolist()  # doctest: +SKIP
    ['host', 'srflx']
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    frame = getattr(events, "events", events)
    other = "caller" if side == "callee" else "callee"
    decided = math.inf
    lines: dict[str, str] = {}
    delivered: list[tuple[float, str]] = []
    for row in _frame_rows(frame):
        t, actor, kind, name, value, _prev, ref, detail = row[:8]
        if kind == "user" and name == "click" and value in ("answer", "decline") and detail == side:
            decided = min(decided, float(t))
        elif actor == side and kind == "ice" and name == "candidate" and value == "gathered":
            lines[str(ref)] = str(detail)
        elif (actor == other and kind == "signal" and name == "new-ice-candidate" and value == "delivered"
              and str(ref).startswith(f"{side}:c")):
            delivered.append((float(t), str(ref)))
    out = []
    seen: set[str] = set()
    for t, ref in delivered:
        if ref in seen:  # a duplicated message: the address was already out
            continue
        seen.add(ref)
        fields = lines.get(ref, "").split()
        typ = fields[fields.index("typ") + 1] if "typ" in fields[:-1] else ""
        address = f"{fields[4]}:{fields[5]}" if len(fields) > 5 else ""
        related = f"{fields[fields.index('raddr') + 1]}:{fields[fields.index('rport') + 1]}" if "rport" in fields[:-1] else ""
        out.append((t, ref, typ, address, related, t < decided))
    return pd.DataFrame(out, columns=_EXPOSED_COLUMNS)
