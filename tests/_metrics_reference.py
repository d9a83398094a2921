"""The pandas implementation of outcome and metrics as it was before #16 (commit b904a30).

Kept verbatim as the oracle of tests/test_metrics.py: ``rtclab.compute_metrics``
and the metrics a run builds from its recorded tuples must give identical
Series for any frame.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from rtclab.trace import Trace

__all__ = ["compute_metrics", "finalize_candidates", "outcome"]

SIDES = ("caller", "callee")


def _first(df: pd.DataFrame, **match: str) -> float:
    mask = pd.Series(True, index=df.index)
    for col, val in match.items():
        mask &= df[col] == val
    hit = df.loc[mask, "t_ms"]
    return float(hit.iloc[0]) if len(hit) else math.nan


def outcome(events: pd.DataFrame, *, media: bool = True) -> tuple[str, str]:
    """``(outcome, reason)`` of a run, from its frame.

    Examples
    --------
    >>> from rtclab.trace import empty_frame
    >>> outcome(empty_frame())
    ('timeout', 'nothing happened')
    """
    df = events
    if len(df) == 0:
        return "timeout", "nothing happened"
    state = df[df["kind"] == "state"]
    conn = state[state["name"] == "connectionState"]
    connected = {a for a in SIDES if ((conn["actor"] == a) & (conn["value"] == "connected")).any()}
    failed = conn[conn["value"] == "failed"]
    errors = df[df["kind"] == "error"]
    runner = errors[errors["name"] == "runner"]
    if len(runner):
        r = runner.iloc[0]
        return "error", f"{r['value']}: {r['detail']}"[:200]
    if connected == set(SIDES):
        if not media:
            return "connected", "both peers connected"
        tracks = df[(df["kind"] == "media") & (df["name"] == "track")]
        frames = df[(df["kind"] == "media") & (df["name"] == "first-frame")]
        if len(tracks) == 0:
            return "no-media", "connected, but no media track was negotiated"
        missing = [
            f"{a} {k}"
            for a in SIDES
            for k in set(tracks.loc[tracks["actor"] == a, "value"])
            if not ((frames["actor"] == a) & (frames["value"] == k)).any()
        ]
        if missing:
            return "no-media", "connected, but no frame received: " + ", ".join(sorted(missing))
        return "connected", "media flows both ways" if all((tracks["actor"] == a).any() for a in SIDES) else "media flows one way"
    hangup = df[(df["kind"] == "user") & (df["name"] == "click") & (df["value"] == "hangup")]
    if len(hangup):
        return "failed", "hung up by the user before the call connected"
    if _nothing_negotiated(df):
        return "no-media", "nothing to negotiate: the offer was created before any track was added"
    api_errors = errors[~errors["name"].isin(["deadline", "runner"])]
    lost = df[(df["kind"] == "ice") & (df["name"] == "candidate") & (df["value"] == "lost")]
    if len(failed):
        who = failed.iloc[0]["actor"]
        if len(lost):
            return "failed", f"candidates lost before peer connection existed ({_n_lost(lost)}); {who} ICE failed"
        if len(api_errors):
            e = api_errors.iloc[0]
            return "failed", f"{e['value']} in {e['name']}; {who} connection failed"
        return "failed", f"{who} connection failed (ICE found no working pair)"
    if len(api_errors):
        e = api_errors.iloc[0]
        return "failed", f"{e['value']} in {e['name']}"
    if len(lost):
        return "timeout", f"candidates lost before peer connection existed ({_n_lost(lost)}); deadline reached while {_where(df)}"
    return "timeout", "deadline reached while " + _where(df)


def _n_lost(lost: pd.DataFrame) -> str:
    n = int((~lost["ref"].str.endswith(":end")).sum())
    end = " and end-of-candidates" if lost["ref"].str.endswith(":end").any() else ""
    return f"{n} lost{end}"


def _where(df: pd.DataFrame) -> str:
    deadline = df[(df["kind"] == "error") & (df["name"] == "deadline")]
    if len(deadline):  # the state at the deadline, not after the clean-up that follows it
        df = df[df["t_ms"] < float(deadline["t_ms"].iloc[0])]
    state = df[(df["kind"] == "state") & (df["name"] == "iceConnectionState")]
    made = df[(df["kind"] == "call") & (df["name"] == "RTCPeerConnection")]
    actors = [a for a in SIDES if (made["actor"] == a).any() or (state["actor"] == a).any()]
    if len(state) or len(made):
        last = state.groupby("actor", observed=True)["value"].last()
        return ", ".join(f"{a} ICE {last.get(a, 'new')}" for a in actors)
    return "nothing connected"


def _nothing_negotiated(df: pd.DataFrame) -> bool:
    srd = df[(df["kind"] == "call") & (df["name"] == "setRemoteDescription") & (df["value"] == "ok")]
    if not set(SIDES) <= set(srd["actor"]):
        return False
    return bool(srd["detail"].str.contains(r"m=\[\]", regex=True).all())


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
        elif kind == "ice" and name == "candidate" and value in ("added", "rejected", "lost"):
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
    df = events
    out: dict[str, Any] = {}
    out["outcome"], out["reason"] = outcome(df, media=media)
    conn = df[(df["kind"] == "state") & (df["name"] == "connectionState") & (df["value"] == "connected")]
    per_side = [_first(conn, actor=a) for a in SIDES]
    out["t_connected_ms"] = max(per_side) if all(not math.isnan(x) for x in per_side) else math.nan
    frames = df[(df["kind"] == "media") & (df["name"] == "first-frame")]
    ff = [float(frames.loc[frames["actor"] == a, "t_ms"].min()) if (frames["actor"] == a).any() else math.nan for a in SIDES]
    out["t_first_frame_ms"] = max(ff) if all(not math.isnan(x) for x in ff) else math.nan
    for a, v in zip(SIDES, ff):
        out[f"t_first_frame_{a}_ms"] = v
    clicks = df[(df["kind"] == "user") & (df["name"] == "click") & (df["value"] == "answer")]
    t_answer = float(clicks["t_ms"].iloc[0]) if len(clicks) else math.nan
    out["t_answer_click_ms"] = t_answer
    a2m = []
    for a, v in zip(SIDES, ff):
        val = math.nan if math.isnan(t_answer) or math.isnan(v) else max(v, t_answer) - t_answer
        out[f"answer_to_media_{a}_ms"] = val
        a2m.append(val)
    out["answer_to_media_ms"] = max(a2m) if not any(math.isnan(x) for x in a2m) else math.nan
    if math.isnan(t_answer):
        out["messages_after_answer"] = out["candidates_after_answer"] = math.nan
    else:
        later = df[df["t_ms"] >= t_answer]
        out["messages_after_answer"] = int(((later["kind"] == "signal") & (later["value"] == "sent")).sum())
        gathered = later[(later["kind"] == "ice") & (later["name"] == "candidate") & (later["value"] == "gathered")
                         & ~later["ref"].str.endswith(":end")]
        out["candidates_after_answer"] = int(gathered["ref"].nunique())
    gstates = df[(df["kind"] == "state") & (df["name"] == "iceGatheringState")]
    g = []
    for a in SIDES:
        s = _first(gstates, actor=a, value="gathering")
        e = _first(gstates, actor=a, value="complete")
        if not math.isnan(s) and not math.isnan(e):
            g.append(e - s)
    out["gathering_ms"] = max(g) if g else math.nan
    cands = df[(df["kind"] == "ice") & (df["name"] == "candidate")]
    real = cands[~cands["ref"].str.endswith(":end")]
    for fate in ("gathered", "added", "lost", "rejected"):
        values = ("added", "late") if fate == "added" else (fate,)
        out[f"candidates_{fate}"] = int(real.loc[real["value"].isin(values), "ref"].nunique())
    sig = df[df["kind"] == "signal"]
    cmsg = sig[(sig["name"] == "new-ice-candidate") & ~sig["ref"].str.endswith(":end")]
    out["candidates_sent"] = int(cmsg.loc[cmsg["value"] == "sent", "ref"].nunique())
    out["candidates_delivered"] = int(cmsg.loc[cmsg["value"] == "delivered", "ref"].nunique())
    for v in ("sent", "delivered", "dropped"):
        out[f"messages_{v}"] = int((sig["value"] == v).sum())
    out["errors"] = int((df["kind"] == "error").sum())
    sel = df[(df["kind"] == "ice") & (df["name"] == "selected-pair")]
    out["selected_pair"] = str(sel["value"].iloc[0]) if len(sel) else ""
    for a in SIDES:  # local/remote candidate types as each side sees its pair
        mine = sel[sel["actor"] == a]
        out[f"selected_pair_{a}"] = str(mine["value"].iloc[0]) if len(mine) else ""
    out["duration_ms"] = float(df["t_ms"].max()) if len(df) else 0.0
    for key, val in out.items():
        if isinstance(val, float) and not math.isnan(val):
            out[key] = round(val, 3)
    return pd.Series(out, dtype=object)
