"""Browser traces: a ``chrome://webrtc-internals`` dump as an rtclab event frame.

(:func:`rtclab.load_trace` is the front door for every trace format; it uses
:func:`updates_from_internals`, :func:`role_mapping` and :func:`rows_from_updates`
of this module. :func:`load_webrtc_internals` is kept for its own API.)

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
``addIceCandidate`` (logged when called) ``call`` ``addIceCandidate`` ``ok`` and ``ice``
                                        ``candidate`` ``added``, unless a failure follows
``addIceCandidateFailed`` (the failure  ``call`` ``error``, ``ice`` ``rejected``, ``error`` row
of the latest unsettled call)           (Chromium's "The remote description was null" is an
                                        ``InvalidStateError``, as its JavaScript error says)
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

__all__ = ["internals_rows", "load_webrtc_internals", "role_mapping", "rows_from_updates", "updates_from_internals"]

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


Update = tuple[float, str, Any, list[Any]]
"""One logged update of a peer connection: (epoch ms, type, value, extra fields)."""

_REMOTE_NULL = "remote description was null"


def _order(pcs: Mapping[str, Any]) -> list[str]:
    """Peer-connection ids in creation order (first update's time, then the id's local number)."""

    def sort_key(pc_id: str) -> tuple[float, int, str]:
        log = pcs[pc_id].get("updateLog") or [] if isinstance(pcs[pc_id], Mapping) else []
        times = [t for t in (_time_ms(e) for e in log if isinstance(e, Mapping)) if t is not None]
        tail = pc_id.rsplit("-", 1)[-1]
        return (min(times) if times else float("inf"), int(tail) if tail.isdigit() else 0, pc_id)

    return sorted(pcs, key=sort_key)


def updates_from_internals(dump: Mapping[str, Any]) -> tuple[dict[str, list[Update]], list[tuple[float, str, Any]]]:
    """The updates of each peer connection of a webrtc-internals dump, in creation order.

    Returns ``({pc_id: [(epoch_ms, type, value, [])...]}, page_events)`` where
    page events are ``(epoch_ms, pc_prefix, getUserMedia entry)``.
    """
    pcs = dump.get("PeerConnections")
    if not isinstance(pcs, Mapping):
        raise ValueError("not a webrtc-internals dump: no 'PeerConnections' object")
    out: dict[str, list[Update]] = {}
    for pc_id in _order(pcs):
        entries = pcs[pc_id].get("updateLog") if isinstance(pcs[pc_id], Mapping) else None
        log: list[Update] = []
        for entry in entries or []:
            t = _time_ms(entry) if isinstance(entry, Mapping) else None
            if t is None or not isinstance(entry.get("type"), str):
                continue
            extra = [entry["error"]] if "error" in entry else []
            log.append((t, entry["type"], entry.get("value", ""), extra))
        out[str(pc_id)] = log
    page: list[tuple[float, str, Any]] = []
    gum = dump.get("getUserMedia")
    if isinstance(gum, str):  # some versions store the list as Python-ish text: not parseable, skipped
        gum = None
    for g in gum or []:
        if not isinstance(g, Mapping) or ("stream_id" not in g and "error" not in g):
            continue  # the request itself: recorded when it settles
        t = _time_ms(g)
        if t is not None:
            page.append((t, str(g.get("rid")), g))
    return out, page


def role_mapping(pcs: Mapping[str, list[Update]]) -> dict[str, str]:
    """Each peer connection's actor from what it did first.

    A peer connection whose first description was a local offer is the
    ``caller``; one whose first description was a remote offer is the
    ``callee``. Those that never negotiated take the side left over, in
    creation order (``caller`` first).
    """
    roles: dict[str, str] = {}
    for pc_id, log in pcs.items():
        for _t, typ, value, _extra in log:
            key = _key(typ)
            kind = _description_type(value)
            if key in ("createoffer", "createofferonsuccess") or (key.startswith("setlocaldescription") and kind == "offer"):
                roles[pc_id] = "caller"
                break
            if key.startswith("setremotedescription") and kind == "offer":
                roles[pc_id] = "callee"
                break
            if key in ("createanswer", "createansweronsuccess") or (key.startswith("setlocaldescription") and kind == "answer"):
                roles[pc_id] = "callee"
                break
    if len(pcs) == 2 and len(roles) == 2 and len(set(roles.values())) == 1:
        roles = {}  # two peer connections that both offered first (glare): creation order decides
    mapping: dict[str, str] = {}
    for pc_id in pcs:
        if pc_id in roles:
            mapping[pc_id] = roles[pc_id]
        else:
            taken = set(roles.values()) | set(mapping.values())
            mapping[pc_id] = "caller" if "caller" not in taken else "callee"
    return mapping


def _description_type(value: Any) -> str:
    obj = _json(value)
    if isinstance(obj, dict):
        return str(obj.get("type") or "")
    if isinstance(value, str):
        m = re.search(r"type:\s*(\w+)", value)
        if m:
            return m.group(1)
    return ""


def _call_error(text: str) -> str:
    """The browser's error name of a failure text (Chromium's addIceCandidate message has none)."""
    if _REMOTE_NULL in text.lower() or "called in wrong state" in text.lower():
        # Chromium 156 logs the message only; its JavaScript error is an InvalidStateError for both
        # ("The remote description was null", "Failed to set remote answer sdp: Called in wrong state: stable")
        return "InvalidStateError"
    return _error_name(text)


def rows_from_updates(
    pcs: Mapping[str, list[Update]],
    mapping: Mapping[str, str],
    page: Sequence[tuple[float, str, Any]] = (),
) -> list[tuple[float, str, str, str, str, str, str, str, str]]:
    """Rows of the rtclab frame (epoch-ms times, a 9th field: the peer connection id).

    ``addIceCandidate`` is logged by Chromium when called; only a failure is
    logged again (``addIceCandidateFailed``). A failure is matched to the
    latest unmatched call of its peer connection (rtcstats-js' ``…OnSuccess``
    / ``…OnFailure`` carry a tracking id, used when present); a call never
    failed is ``added``.
    """
    tr = Trace(clock=lambda: 0.0)  # only for its candidate refs; times are given explicitly
    pending: list[tuple[float, int, str, str, str, Any, list[Any]]] = []
    seq = 0
    for pc_id, actor in mapping.items():
        for t, typ, value, extra in pcs.get(pc_id, []):
            pending.append((t, seq, actor, pc_id, typ, value, list(extra)))
            seq += 1
    frames: dict[str, tuple[str, str]] = {}
    for pc_id, actor in mapping.items():
        frames.setdefault(pc_id.split("-", 1)[0], (actor, pc_id))
    for t, rid, g in page:
        if rid in frames:
            actor, pc_id = frames[rid]
            pending.append((t, seq, actor, pc_id, "_getUserMedia", g, []))
            seq += 1
    pending.sort(key=lambda p: (p[0], p[1]))
    actors = sorted(set(mapping.values()))

    # settle every addIceCandidate call first: (value, time, error text)
    fate: dict[int, tuple[str, float, str]] = {}
    skip: set[int] = set()
    open_calls: dict[str, list[tuple[int, str]]] = {}
    for t, s, _actor, pc_id, typ, value, extra in pending:
        key = _key(typ)
        track = str(extra[0]) if extra else ""
        calls = open_calls.setdefault(pc_id, [])
        if key == "addicecandidate":
            calls.append((s, track))
        elif key in ("addicecandidateonsuccess", "addicecandidateonfailure", "addicecandidatefailed"):
            match = next((i for i in range(len(calls) - 1, -1, -1) if track and calls[i][1] == track), None)
            if match is None and key == "addicecandidatefailed" and calls:
                match = len(calls) - 1
            if match is None:
                continue  # an older Chrome's failure that carries the candidate: handled below
            call_seq, _ = calls.pop(match)
            ok = key.endswith("onsuccess")
            fate[call_seq] = ("ok" if ok else "error", t, "" if ok else (_text(value) or _text(extra[-1] if extra else "")))
            skip.add(s)

    rows: list[tuple[float, str, str, str, str, str, str, str, str]] = []
    states: dict[tuple[str, str], str] = {}
    last_desc: dict[tuple[str, str], Any] = {}

    def add(t: float, actor: str, pc_id: str, kind: str, name: str, value: str = "", prev: str = "", ref: str = "", detail: str = "") -> None:
        rows.append((t, actor, kind, name, value, prev, ref, detail[:2000], pc_id))

    def end_ref(receiver: str) -> str:
        others = [a for a in actors if a != receiver]
        return f"{others[0]}:end" if len(others) == 1 else "remote:end"

    for t, s, actor, pc_id, typ, value, extra in pending:
        if s in skip:
            continue
        key = _key(typ)
        if key.endswith("(legacy)"):
            continue  # Chrome logs the legacy iceConnectionState next to the standard one
        if key == "_getusermedia":
            g = value
            if "error" in g:
                msg = f"{g.get('error')}: {g.get('error_message', '')}".strip(": ")
                add(t, actor, pc_id, "call", "getUserMedia", "error", detail=msg)
                add(t, actor, pc_id, "error", "getUserMedia", _error_name(str(g.get("error"))) if "Error" in str(g.get("error")) else str(g.get("error")), detail=msg)
            else:
                kinds = [k for k in ("audio", "video") if g.get(f"{k}_track_info")]
                add(t, actor, pc_id, "call", "getUserMedia", "ok", detail=",".join(kinds))
            continue
        if key.startswith("navigator.mediadevices.getusermedia"):
            if key.endswith("onsuccess"):
                kinds = [str(tr_[0]) for tr_ in value if isinstance(tr_, list) and tr_] if isinstance(value, list) else []
                add(t, actor, pc_id, "call", "getUserMedia", "ok", detail=",".join(kinds))
            elif key.endswith("onfailure"):
                err = _text(value)
                add(t, actor, pc_id, "call", "getUserMedia", "error", detail=err)
                add(t, actor, pc_id, "error", "getUserMedia", _error_name(err), detail=err)
            continue
        if key in _STATES:
            name, initial = _STATES[key]
            new = _text(value)
            prev = states.get((pc_id, name), initial)
            if new == prev:
                continue
            states[(pc_id, name)] = new
            add(t, actor, pc_id, "state", name, new, prev=prev)
            continue
        if key == "icecandidate":
            line, detail = _candidate(value)
            if line:
                add(t, actor, pc_id, "ice", "candidate", "gathered", ref=tr.candidate_ref(actor, line, create=True), detail=detail)
            else:
                add(t, actor, pc_id, "ice", "candidate", "end", ref=f"{actor}:end")
            continue
        if key == "addicecandidate":
            line, detail = _candidate(value)
            ref = (tr.find_candidate_ref(line) if line else end_ref(actor))
            outcome, t_done, err = fate.get(s, ("ok", t, ""))
            if outcome == "ok":
                add(t_done, actor, pc_id, "call", "addIceCandidate", "ok", ref=ref, detail=detail)
                add(t_done, actor, pc_id, "ice", "candidate", "added", ref=ref, detail=detail)
            else:
                add(t_done, actor, pc_id, "call", "addIceCandidate", "error", ref=ref, detail=f"{err} ({detail})")
                add(t_done, actor, pc_id, "ice", "candidate", "rejected", ref=ref, detail=err)
                add(t_done, actor, pc_id, "error", "addIceCandidate", _call_error(err), ref=ref, detail=err)
            continue
        if key in ("addicecandidatefailed", "addicecandidateonfailure"):  # older Chrome: the value is the candidate
            line, detail = _candidate(value)
            ref = tr.find_candidate_ref(line) if line else ""
            err = _text(extra[0]) if extra else _text(value)
            add(t, actor, pc_id, "call", "addIceCandidate", "error", ref=ref, detail=err)
            add(t, actor, pc_id, "ice", "candidate", "rejected", ref=ref, detail=err)
            add(t, actor, pc_id, "error", "addIceCandidate", _call_error(err), ref=ref, detail=err)
            continue
        if key == "addicecandidateonsuccess":
            continue
        if key == "icecandidateerror":
            add(t, actor, pc_id, "error", "icecandidate", "IceCandidateError", detail=_text(value))
            continue
        if key == "negotiationneeded":
            add(t, actor, pc_id, "call", "negotiationneeded", "event")
            continue
        if key == "addstream" and not typ.lower().startswith("on"):  # older Chrome: the local addStream() call
            add(t, actor, pc_id, "call", "addStream", "ok", detail=_text(value)[:300])
            continue
        if key == "addstream":  # older Chrome's onAddStream: "id: s1, audio: [a1], video: [v1]"
            text = _text(value)
            kinds = [k for k in ("audio", "video") if re.search(rf"{k}: \[[^\]]+\]", text)] or [""]
            for kind in kinds:
                add(t, actor, pc_id, "media", "track", kind or text[:40], ref=f"{actor}:{kind}" if kind else "", detail=text[:300])
            continue
        if key == "track":
            obj = _json(value)
            kind = obj.get("kind", "") if isinstance(obj, dict) else ""
            if not kind and isinstance(value, list) and value and value[0] in ("audio", "video"):
                kind = str(value[0])  # rtcstats: [kind, track id, label, stream ids...]
            add(t, actor, pc_id, "media", "track", kind or _text(value)[:40], ref=f"{actor}:{kind}" if kind else "", detail=_text(value)[:300])
            continue
        if key == "datachannel":
            add(t, actor, pc_id, "media", "datachannel", "received", detail=_text(value)[:300])
            continue
        if key.startswith("transceiver"):
            obj = _json(value)
            detail = ""
            if isinstance(obj, dict):
                detail = f"mid={obj.get('mid')} kind={obj.get('kind')} direction={obj.get('direction')}"
            add(t, actor, pc_id, "media", "transceiver", key[len("transceiver"):] or "event", detail=detail)
            continue
        if key == "create":
            add(t, actor, pc_id, "call", "RTCPeerConnection", "ok", detail=_text(value)[:300])
            continue
        if key in ("getstats", "constraints", "websocket", "addtrackonsuccess", "addtransceiveronsuccess") or key.startswith("mediastreamtrack.") or key.startswith("htmlmediaelement."):
            continue
        base = None
        for suffix, outcome in (("onsuccess", "ok"), ("onfailure", "error")):
            if key.endswith(suffix) and key[: -len(suffix)] in _PROMISE_CALLS:
                base = (_PROMISE_CALLS[key[: -len(suffix)]], outcome)
        if base is not None:
            name, outcome = base
            if outcome == "ok":
                described = value if _text(value) else last_desc.get((pc_id, name), value)
                detail = _sdp_summary(described) if "description" in name.lower() or name.startswith("create") else _text(value)[:200]
                add(t, actor, pc_id, "call", name, "ok", detail=detail)
            else:
                err = _text(value)
                add(t, actor, pc_id, "call", name, "error", detail=err)
                add(t, actor, pc_id, "error", name, _call_error(err), detail=err)
            continue
        if key in _PROMISE_CALLS:
            last_desc[(pc_id, _PROMISE_CALLS[key])] = value
            continue  # the call's start: its row comes when it settles
        camel = typ[2:] if typ.lower().startswith("on") else typ
        add(t, actor, pc_id, "call", camel, "event" if typ.lower().startswith("on") else "ok", detail=_text(value)[:300])
    return rows


def _mapping(order: Sequence[str], actors: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    if actors is None or (isinstance(actors, Sequence) and not isinstance(actors, str)):
        names = list(actors) if actors is not None else ["caller", "callee"]
        mapping = dict(zip(order, names))
    else:
        mapping = dict(actors)
        unknown = [k for k in mapping if k not in order]
        if unknown:
            raise ValueError(f"no peer connection {unknown} in the dump (it has {list(order)})")
    bad = {a for a in mapping.values() if a not in ("caller", "callee", "channel", "user", "network")}
    if bad:
        raise ValueError(f"actors must be rtclab actors such as 'caller'/'callee', got {sorted(bad)}")
    return mapping


def internals_rows(
    dump: Mapping[str, Any], actors: Mapping[str, str] | Sequence[str] | None = None
) -> tuple[list[tuple[float, str, str, str, str, str, str, str]], dict[str, Any]]:
    """Rows (epoch-ms times) and metadata of a parsed dump; see :func:`load_webrtc_internals`."""
    pcs, page = updates_from_internals(dump)
    order = list(pcs)
    mapping = _mapping(order, actors)
    rows = rows_from_updates(pcs, mapping, page)
    times = [u[0] for pc_id in mapping for u in pcs[pc_id]] + [p[0] for p in page if p[1] in {k.split("-", 1)[0] for k in mapping}]
    raw = dump.get("PeerConnections") or {}
    meta = {
        "source": "webrtc-internals",
        "user_agent": str(dump.get("UserAgent", "")),
        "peers": mapping,
        "skipped_peers": [k for k in order if k not in mapping],
        "urls": {k: str(raw[k].get("url", "")) for k in mapping if isinstance(raw.get(k), Mapping)},
        "first_epoch_ms": min(times) if times else None,
    }
    return [r[:8] for r in rows], meta


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
