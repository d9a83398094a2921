"""Browser traces: a ``chrome://webrtc-internals`` dump as an rtclab event frame.

Chrome and Chromium record every ``RTCPeerConnection`` of every tab; the page
``chrome://webrtc-internals`` saves them as a JSON "dump" (*Create a
WebRTC-Internals dump* → *Download*, with *Compress result* unchecked, or
checked: gzip is read too)::

    {"PeerConnections": {"8-1": {"updateLog": [{"timestamp"|"time", "type", "value"}, ...],
                                 "stats": {...}, "url": ..., "rtcConfiguration": ...}},
     "getUserMedia": [...], "UserAgent": ...}

:func:`load_webrtc_internals` turns the ``updateLog`` of each peer connection
into rows of the rtclab frame (see :mod:`rtclab.trace`), so ``rtclab.plots``
draw a learner's own browser call like a lab run. Peer connections are given
actors in the order they were created (``caller``, then ``callee``) unless an
``actors`` mapping says otherwise; the clock starts at the first recorded
event. ``data/webrtc-internals/`` holds a real dump made by headless Chromium
156 (``rtclab.browser.make_internals_dump``).

Mapping of update types (Chrome prefixes events with ``on``; older versions
used camel case such as ``signalingStateChange``: both are accepted)

======================================  =====================================================
update type                             rows
======================================  =====================================================
``signalingstatechange`` and the three  ``state`` row: ``signalingState``, ``iceGatheringState``,
other state changes                     ``iceConnectionState``, ``connectionState``; ``prev``
                                        is the peer connection's previous value
``createOffer``, ``setLocalDescription``  nothing at the call itself (``Peer`` records calls
and the other promise-returning calls   when they settle); ``…OnSuccess`` → ``call`` row
                                        ``ok`` (``detail``: SDP summary), ``…OnFailure`` →
                                        ``call`` row ``error`` and an ``error`` row
``icecandidate``                        ``ice`` ``candidate`` ``gathered`` (``ref``
                                        ``caller:c1``…; the same ref when the other peer
                                        connection of the dump adds that candidate)
``addIceCandidate`` (logged on success) ``call`` ``addIceCandidate`` ``ok`` and ``ice``
                                        ``candidate`` ``added``
``addIceCandidateFailed``               ``call`` ``error``, ``ice`` ``rejected``, ``error`` row
``icecandidateerror``                   ``error`` row ``icecandidate`` / ``IceCandidateError``
``negotiationneeded``                   ``call`` ``negotiationneeded`` ``event`` (as ``Peer``)
``track``                               ``media`` ``track`` (value: the kind)
``datachannel``                         ``media`` ``datachannel`` ``received``
``transceiverAdded/Modified/Removed``   ``media`` ``transceiver`` ``added``/``modified``/…
``addTrack``, ``close``, other calls    ``call`` row ``ok`` (Chrome logs them once)
other ``on…`` events                    ``call`` row, value ``event``
======================================  =====================================================

A ``getUserMedia`` success (or error) of the page that owns a peer connection
becomes a ``call`` row of that peer's actor. Chrome does not log the ``null``
end-of-candidates event: gathering's end is the ``iceGatheringState``
``complete`` row. ``frame.attrs["meta"]`` holds the source, the user agent, the
peer-connection→actor mapping, the URLs and ``t0_epoch_ms`` (time zero).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .trace import Trace

__all__ = ["load_webrtc_internals", "internals_rows"]

_STATES = {
    "signalingstatechange": ("signalingState", "stable"),
    "icegatheringstatechange": ("iceGatheringState", "new"),
    "iceconnectionstatechange": ("iceConnectionState", "new"),
    "connectionstatechange": ("connectionState", "new"),
}
_PROMISE_CALLS = {
    "createoffer": "createOffer",
    "createanswer": "createAnswer",
    "setlocaldescription": "setLocalDescription",
    "setremotedescription": "setRemoteDescription",
    "getstats": "getStats",
    "replacetrack": "replaceTrack",
    "setparameters": "setParameters",
}
_ERROR_NAME = re.compile(r"\b([A-Z][A-Za-z]*Error)\b")


def _key(update_type: str) -> str:
    """Normalise an update type: lower case, without ``on`` prefix (``onIceCandidate`` → ``icecandidate``)."""
    t = update_type.strip().lower()
    if t.startswith("on") and not t.startswith("onsuccess"):
        t = t[2:]
    if t == "renegotiationneeded":
        t = "negotiationneeded"
    return t


def _text(value: Any) -> str:
    """An update's value as text: JSON strings are unquoted, the rest kept compact."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return json.dumps(value, sort_keys=True)
    s = value.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        try:
            return str(json.loads(s))
        except ValueError:
            return s[1:-1]
    return s


def _json(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value) if isinstance(value, str) and value.strip()[:1] in "{[" else None
    except ValueError:
        return None


def _sdp_summary(value: Any) -> str:
    """``offer m=[audio,video] candidates=0`` for a description, as rtclab's channel writes it."""
    desc = _json(value)
    if isinstance(desc, dict) and isinstance(desc.get("sdp"), str):
        sdp, kind = desc["sdp"], desc.get("type", "")
    elif isinstance(value, str) and "v=0" in value:  # older Chrome: "type: offer, sdp: v=0..."
        sdp = value[value.find("v=0"):].replace("\\r\\n", "\r\n")
        m = re.search(r"type:\s*(\w+)", value)
        kind = m.group(1) if m else ""
    else:
        return _text(value)[:200]
    lines = sdp.splitlines()
    media = [line[2:].split(" ", 1)[0] for line in lines if line.startswith("m=")]
    cands = sum(1 for line in lines if line.startswith("a=candidate:"))
    return f"{kind} m=[{','.join(media)}] candidates={cands}".strip()


def _candidate(value: Any) -> tuple[str, str]:
    """(candidate line, detail) from an icecandidate / addIceCandidate value."""
    obj = _json(value)
    if isinstance(obj, dict):
        line = str(obj.get("candidate") or "")
        return line, line or "end-of-candidates"
    text = _text(value)  # older Chrome: "sdpMid: 0, sdpMLineIndex: 0, candidate: candidate:..."
    m = re.search(r"(candidate:\S.*)$", text)
    line = m.group(1).strip() if m else ""
    return line, line or text or "end-of-candidates"


def _error_name(text: str) -> str:
    m = _ERROR_NAME.search(text)
    return m.group(1) if m else "OperationError"


def _time_ms(entry: Mapping[str, Any]) -> float | None:
    """Epoch milliseconds of an update (``timestamp`` number, or older ``time`` text)."""
    for key in ("timestamp", "time"):
        if key not in entry:
            continue
        raw = entry[key]
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str) and raw.strip():
            try:
                return float(raw)
            except ValueError:
                pass
            try:
                return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000.0
            except ValueError:
                pass
            try:
                return pd.Timestamp(raw).timestamp() * 1000.0
            except (ValueError, TypeError):
                pass
    return None


def _read(path_or_dump: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if isinstance(path_or_dump, Mapping):
        return dict(path_or_dump), "<dict>"
    path = Path(path_or_dump)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # "Compress result" checked: gzip
        raw = gzip.decompress(raw)
    try:
        dump = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a webrtc-internals dump (not JSON: {exc})") from None
    return dump, str(path)


def _order(pcs: Mapping[str, Any]) -> list[str]:
    """Peer-connection ids in creation order (first update's time, then the id's local number)."""

    def sort_key(pc_id: str) -> tuple[float, int, str]:
        log = pcs[pc_id].get("updateLog") or [] if isinstance(pcs[pc_id], Mapping) else []
        times = [t for t in (_time_ms(e) for e in log if isinstance(e, Mapping)) if t is not None]
        tail = pc_id.rsplit("-", 1)[-1]
        return (min(times) if times else float("inf"), int(tail) if tail.isdigit() else 0, pc_id)

    return sorted(pcs, key=sort_key)


def internals_rows(
    dump: Mapping[str, Any], actors: Mapping[str, str] | Sequence[str] | None = None
) -> tuple[list[tuple[float, str, str, str, str, str, str, str]], dict[str, Any]]:
    """Rows (epoch-ms times) and metadata of a parsed dump; see :func:`load_webrtc_internals`."""
    pcs = dump.get("PeerConnections")
    if not isinstance(pcs, Mapping):
        raise ValueError("not a webrtc-internals dump: no 'PeerConnections' object")
    order = _order(pcs)
    if actors is None or (isinstance(actors, Sequence) and not isinstance(actors, str)):
        names = list(actors) if actors is not None else ["caller", "callee"]
        mapping = dict(zip(order, names))
    else:
        mapping = dict(actors)
        unknown = [k for k in mapping if k not in pcs]
        if unknown:
            raise ValueError(f"no peer connection {unknown} in the dump (it has {order})")
    bad = {a for a in mapping.values() if a not in ("caller", "callee", "channel", "user", "network")}
    if bad:
        raise ValueError(f"actors must be rtclab actors such as 'caller'/'callee', got {sorted(bad)}")

    tr = Trace(clock=lambda: 0.0)  # only for its candidate refs; times are given explicitly
    rows: list[tuple[float, str, str, str, str, str, str, str]] = []
    pending: list[tuple[float, int, str, Mapping[str, Any]]] = []
    seq = 0
    for pc_id, actor in mapping.items():
        for entry in pcs[pc_id].get("updateLog") or []:
            t = _time_ms(entry) if isinstance(entry, Mapping) else None
            if t is None or not isinstance(entry.get("type"), str):
                continue
            pending.append((t, seq, actor, entry))
            seq += 1
    # getUserMedia results of the page (render frame) that owns each peer connection
    frames: dict[str, str] = {}
    for pc_id, actor in mapping.items():
        frames.setdefault(pc_id.split("-", 1)[0], actor)
    for g in dump.get("getUserMedia") or []:
        if not isinstance(g, Mapping) or str(g.get("rid")) not in frames:
            continue
        if "stream_id" not in g and "error" not in g:
            continue  # the request itself: recorded when it settles
        t = _time_ms(g)
        if t is not None:
            pending.append((t, seq, frames[str(g.get("rid"))], {"type": "_getUserMedia", "value": g}))
            seq += 1
    pending.sort(key=lambda p: (p[0], p[1]))

    states: dict[tuple[str, str], str] = {}

    def add(t: float, actor: str, kind: str, name: str, value: str = "", prev: str = "", ref: str = "", detail: str = "") -> None:
        rows.append((t, actor, kind, name, value, prev, ref, detail[:2000]))

    for t, _s, actor, entry in pending:
        typ, value = entry["type"], entry.get("value", "")
        key = _key(typ)
        if key.endswith("(legacy)"):
            continue  # Chrome logs the legacy iceConnectionState next to the standard one
        if key == "_getusermedia":
            g = value
            if "error" in g:
                msg = f"{g.get('error')}: {g.get('error_message', '')}".strip(": ")
                add(t, actor, "call", "getUserMedia", "error", detail=msg)
                add(t, actor, "error", "getUserMedia", _error_name(str(g.get("error"))) if "Error" in str(g.get("error")) else str(g.get("error")), detail=msg)
            else:
                kinds = [k for k in ("audio", "video") if g.get(f"{k}_track_info")]
                add(t, actor, "call", "getUserMedia", "ok", detail=",".join(kinds))
            continue
        if key in _STATES:
            name, initial = _STATES[key]
            new = _text(value)
            prev = states.get((actor, name), initial)
            if new == prev:
                continue
            states[(actor, name)] = new
            add(t, actor, "state", name, new, prev=prev)
            continue
        if key == "icecandidate":
            line, detail = _candidate(value)
            if line:
                add(t, actor, "ice", "candidate", "gathered", ref=tr.candidate_ref(actor, line, create=True), detail=detail)
            else:
                add(t, actor, "ice", "candidate", "end", ref=f"{actor}:end")
            continue
        if key in ("addicecandidate", "addicecandidatefailed"):
            line, detail = _candidate(value)
            ref = tr.find_candidate_ref(line) if line else ""
            if key == "addicecandidate":
                add(t, actor, "call", "addIceCandidate", "ok", ref=ref, detail=detail)
                add(t, actor, "ice", "candidate", "added", ref=ref, detail=detail)
            else:
                err = _text(entry.get("error", "")) or _text(value)
                add(t, actor, "call", "addIceCandidate", "error", ref=ref, detail=err)
                add(t, actor, "ice", "candidate", "rejected", ref=ref, detail=err)
                add(t, actor, "error", "addIceCandidate", _error_name(err), ref=ref, detail=err)
            continue
        if key == "icecandidateerror":
            add(t, actor, "error", "icecandidate", "IceCandidateError", detail=_text(value))
            continue
        if key == "negotiationneeded":
            add(t, actor, "call", "negotiationneeded", "event")
            continue
        if key == "track" or key == "addstream":
            obj = _json(value)
            kind = obj.get("kind", "") if isinstance(obj, dict) else ""
            add(t, actor, "media", "track", kind or _text(value)[:40], ref=f"{actor}:{kind}" if kind else "", detail=_text(value)[:300])
            continue
        if key == "datachannel":
            add(t, actor, "media", "datachannel", "received", detail=_text(value)[:300])
            continue
        if key.startswith("transceiver"):
            obj = _json(value)
            detail = ""
            if isinstance(obj, dict):
                detail = f"mid={obj.get('mid')} kind={obj.get('kind')} direction={obj.get('direction')}"
            add(t, actor, "media", "transceiver", key[len("transceiver"):] or "event", detail=detail)
            continue
        base = None
        for suffix, outcome in (("onsuccess", "ok"), ("onfailure", "error")):
            if key.endswith(suffix) and key[: -len(suffix)] in _PROMISE_CALLS:
                base = (_PROMISE_CALLS[key[: -len(suffix)]], outcome)
        if base is not None:
            name, outcome = base
            if outcome == "ok":
                detail = _sdp_summary(value) if "description" in name.lower() or name.startswith("create") else _text(value)[:200]
                add(t, actor, "call", name, "ok", detail=detail)
            else:
                err = _text(value)
                add(t, actor, "call", name, "error", detail=err)
                add(t, actor, "error", name, _error_name(err), detail=err)
            continue
        if key in _PROMISE_CALLS:
            continue  # the call's start: its row comes when it settles
        camel = typ[2:] if typ.lower().startswith("on") else typ
        add(t, actor, "call", camel, "event" if typ.lower().startswith("on") else "ok", detail=_text(value)[:300])

    meta = {
        "source": "webrtc-internals",
        "user_agent": str(dump.get("UserAgent", "")),
        "peers": mapping,
        "skipped_peers": [k for k in order if k not in mapping],
        "urls": {k: str(pcs[k].get("url", "")) for k in mapping},
        "first_epoch_ms": pending[0][0] if pending else None,
    }
    return rows, meta


def load_webrtc_internals(
    path: str | Path | Mapping[str, Any],
    actors: Mapping[str, str] | Sequence[str] | None = None,
    *,
    t0_epoch_ms: float | None = None,
) -> pd.DataFrame:
    """Read a ``chrome://webrtc-internals`` dump into the rtclab event frame.

    Parameters
    ----------
    path
        The dump file (JSON, or gzip when *Compress result* was checked), or
        the already parsed dump.
    actors
        Which peer connection is which side: a mapping ``{"8-1": "caller",
        "8-2": "callee"}`` (peer connections not in it are left out) or a
        list of actors given in creation order. Default: the first peer
        connection created is ``caller``, the second ``callee``, any others
        are left out (listed in ``attrs["meta"]["skipped_peers"]``).
    t0_epoch_ms
        Time zero in epoch milliseconds; default: the first recorded event.

    Returns
    -------
    pandas.DataFrame
        The frame of :mod:`rtclab.trace` (``t_ms`` since the first event),
        with the dump's metadata in ``attrs["meta"]``.

    Examples
    --------
    >>> import rtclab.internals as wi
    >>> from rtclab import data
    >>> df = wi.load_webrtc_internals(data.path("webrtc-internals/chromium-basic.json"))  # doctest: +SKIP
    >>> df.query("kind == 'state' and name == 'connectionState'").value.tolist()  # doctest: +SKIP
    ['connecting', 'connecting', 'connected', 'connected']
    """
    from .trace import _to_frame

    dump, source = _read(path)
    rows, meta = internals_rows(dump, actors)
    if t0_epoch_ms is None:  # the first update of the dump, recorded as a row or not
        t0_epoch_ms = meta.pop("first_epoch_ms") or 0.0
    else:
        meta.pop("first_epoch_ms")
    shifted = [(round(r[0] - t0_epoch_ms, 3),) + r[1:] for r in rows]
    frame = _to_frame(shifted)
    meta.update({"path": source, "t0_epoch_ms": t0_epoch_ms})
    frame.attrs["meta"] = meta
    return frame
