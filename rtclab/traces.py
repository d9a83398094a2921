"""Browser traces as people have them: one front door, :func:`load_trace`.

``rtclab.load_trace(path)`` looks at the file and reads any of:

``rtclab`` run
    a CSV written by ``Run.save`` / :func:`rtclab.save` (read by :func:`rtclab.load`).
``webrtc-internals`` dump
    the JSON that ``chrome://webrtc-internals`` downloads (*Create a
    WebRTC-Internals dump*), plain or gzip (*Compress result*), of any Chrome
    version rtclab knows: update types with or without the ``on`` prefix and in
    older camel case, states JSON-quoted (``"\\"stable\\""``) or bare, a
    ``timestamp`` number or an older ``time`` string, legacy ``key: value``
    candidate and description strings (see :mod:`rtclab.internals`).
``rtcstats`` dump
    JSON Lines: a first line ``RTCStatsDump``, a metadata object with
    ``fileFormat`` 3, then one ``[method, pcId, value, ..., delta_ms]`` array
    per event: Chromium's own export (*Download the "rtcstats dump"*, always
    gzip) and the files of ``rtcstats-js`` / ``rtcstats-server`` (methods and
    stats properties compressed to numbers, ``getStats`` reports as deltas,
    descriptions with unchanged sections left out). The last element of each
    row is the time since the previous row (the first: since the Unix epoch).

Every peer connection stays apart
---------------------------------
The frame has the columns of :mod:`rtclab.trace` plus ``pc``: the id of the
peer connection a row belongs to (the dump's id, e.g. ``8-1`` or ``PC_0``;
``""`` for rows of an rtclab run). Each peer connection gets an actor from what
it did first: the one whose first description was a local offer is the
``caller``, a remote offer makes it the ``callee`` (ties and silent ones: in
creation order). Two peer connections of one page calling each other become
caller and callee; a dump of one side of a real call has one actor; several
calls in one dump have several rows per actor, told apart by ``pc``.
:mod:`rtclab.plots`, :func:`rtclab.compute_metrics` and :func:`rtclab.diagnose`
accept the frame as it is.

What a trace lacks
------------------
``frame.attrs["meta"]["lacks"]`` lists, in words, what the format cannot show
and what this file does not hold (for instance: browser dumps have no
signaling messages, Chromium's webrtc-internals does not log end-of-candidates,
a dump of one peer connection has nothing of the other side).
:func:`rtclab.diagnose` says so when a finding needs it.

Bad files
---------
A file that is none of these, or is cut short, raises one
:class:`TraceFormatError` (a ``ValueError``) naming the file, the problem and
the line, never an exception from deep inside a parser.
"""

from __future__ import annotations

import ipaddress
import json
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import internals as _wi
from .trace import COLUMNS, _normalise
from .trace import load as _load_rtclab

__all__ = ["TraceFormatError", "anonymize_frame", "load_trace"]


class TraceFormatError(ValueError):
    """A trace file rtclab cannot read: names the file, the problem and the line.

    Attributes
    ----------
    path
        The file.
    line
        The 1-based line where the problem is, or ``None`` when it is not about
        one line.
    problem
        What is wrong, in words.
    """

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f", line {line}" if line is not None else ""
        super().__init__(f"{self.path}{where}: {problem}")


KNOWN = (
    "an rtclab run (CSV from Run.save), a chrome://webrtc-internals dump (JSON, maybe gzip) "
    "or an rtcstats dump (JSON Lines starting with 'RTCStatsDump')"
)

# rtcstats method ids (file format 3) -> method names, for the methods rtclab maps to rows.
_METHODS: dict[str, str] = {
    "g": "getStats", "1": "getStats", "2": "createOffer", "3": "createOfferOnSuccess",
    "12": "createOfferOnFailure", "4": "createAnswer", "5": "createAnswerOnSuccess",
    "13": "createAnswerOnFailure", "6": "setLocalDescription", "7": "setLocalDescriptionOnSuccess",
    "14": "setLocalDescriptionOnFailure", "8": "setRemoteDescription",
    "9": "setRemoteDescriptionOnSuccess", "15": "setRemoteDescriptionOnFailure",
    "10": "addIceCandidate", "11": "addIceCandidateOnSuccess", "16": "addIceCandidateOnFailure",
    "20": "onicecandidate", "21": "onicecandidateerror", "22": "ontrack",
    "23": "onsignalingstatechange", "24": "oniceconnectionstatechange",
    "25": "onconnectionstatechange", "26": "onicegatheringstatechange",
    "27": "onnegotiationneeded", "28": "ondatachannel", "30": "addTrack", "31": "addTrackOnSuccess",
    "32": "addTransceiver", "33": "addTransceiverOnSuccess", "34": "removeTrack",
    "35": "createDataChannel", "36": "close", "37": "restartIce", "38": "setConfiguration",
    "39": "create", "40": "constraints", "51": "replaceTrack", "50": "setParameters",
    "60": "navigator.mediaDevices.getUserMedia", "61": "navigator.mediaDevices.getUserMediaOnSuccess",
    "65": "navigator.mediaDevices.getUserMediaOnFailure",
    "72": "MediaStreamTrack.onended", "73": "MediaStreamTrack.onmute", "74": "MediaStreamTrack.onunmute",
}
# the few compressed getStats properties and types rtclab reads (first frames, selected pair)
_STATS_PROPS = {"t": "timestamp", "11": "kind", "14": "packetsReceived", "20": "framesDecoded",
                "125": "selectedCandidatePairId", "136": "candidateType", "148": "localCandidateId",
                "149": "remoteCandidateId", "118": "state", "150": "nominated"}
_STATS_TYPES = {"1": "inbound-rtp", "2": "outbound-rtp", "5": "transport", "6": "candidate-pair",
                "7": "local-candidate", "8": "remote-candidate", "10": "peer-connection"}


# --------------------------------------------------------------------------------------
# reading bytes and sniffing
# --------------------------------------------------------------------------------------


def _bytes(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, gunzipped if gzip; a cut-off gzip stream is a TraceFormatError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TraceFormatError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw, False
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw)
    except zlib.error as exc:
        raise TraceFormatError(path, f"gzip data is damaged ({exc})") from None
    if not d.eof:
        line = out.count(b"\n") + 1
        raise TraceFormatError(path, "the gzip data ends early: the file is truncated", line)
    return out, True


def _sniff(text: str) -> str:
    head = text.lstrip("\ufeff")[:4096]
    if head.startswith("RTCStatsDump"):
        return "rtcstats"
    if head.startswith("# rtclab") or head.startswith("t_ms,actor,kind"):
        return "rtclab"
    if head.lstrip()[:1] == "{":
        return "json"
    if head.lstrip()[:1] == "[" and "RTCStatsDump" not in head:
        return "jsonl-without-header"
    return "unknown"


def load_trace(
    path: str | Path,
    *,
    anonymize: bool = False,
    actors: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read a saved run, a webrtc-internals dump or an rtcstats dump into one frame.

    Parameters
    ----------
    path
        The file; the format is found from its content (gzip is read too).
    anonymize
        Replace every IP address in the text columns and the metadata by a
        stand-in, consistently (the same address always gets the same
        stand-in: IPv4 from ``198.18.0.0/15``, IPv6 from ``2001:db8::/32``;
        mDNS ``….local`` names become ``hostN.local``). Loopback and
        unspecified addresses stay.
    actors
        For browser dumps: ``{pc_id: "caller" | "callee"}`` to override the
        actor each peer connection gets (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        The rtclab frame plus a ``pc`` column; ``attrs["meta"]`` holds
        ``source`` (``rtclab``, ``webrtc-internals``, ``rtcstats``), ``peers``
        (pc id → actor), ``lacks`` (what the trace cannot show), the user agent
        and ``t0_epoch_ms`` when known.

    Raises
    ------
    TraceFormatError
        The file is none of these formats, or is damaged or cut short.

    Examples
    --------
    >>> import rtclab
    >>> df = rtclab.load_trace(rtclab.data.path("webrtc-internals/chromium-basic.json"))  # doctest: +SKIP
    >>> sorted(df.attrs["meta"]["peers"].values())  # doctest: +SKIP
    ['callee', 'caller']
    """
    path = Path(path)
    raw, gzipped = _bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TraceFormatError(path, f"not text (byte {exc.start} is not UTF-8): not {KNOWN}", line) from None
    fmt = _sniff(text)
    readers = {"rtclab": lambda: _read_rtclab(path, text, gzipped), "rtcstats": lambda: _read_rtcstats(path, text, actors),
               "json": lambda: _read_internals(path, text, actors)}
    if fmt in readers:
        try:
            frame = readers[fmt]()
        except TraceFormatError:
            raise
        except Exception as exc:  # a shape no reader expected: still one clear error, never a deep traceback
            kind = {"json": "a webrtc-internals dump", "rtcstats": "an rtcstats dump", "rtclab": "an rtclab run"}[fmt]
            raise TraceFormatError(path, f"looks like {kind} but holds something rtclab cannot read "
                                   f"({type(exc).__name__}: {exc})") from None
    elif fmt == "jsonl-without-header":
        raise TraceFormatError(path, "JSON lines without the 'RTCStatsDump' first line: rtcstats file formats "
                               "before 3 are not supported (3 is)", 1)
    else:
        raise TraceFormatError(path, f"not a trace rtclab knows; expected {KNOWN}", 1)
    frame.attrs["meta"]["gzip"] = gzipped
    if anonymize:
        frame = anonymize_frame(frame)
    return frame


def _read_rtclab(path: Path, text: str, gzipped: bool) -> pd.DataFrame:
    if gzipped:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "run.csv"
            plain.write_text(text, encoding="utf-8", newline="")
            return _read_rtclab(plain, text, False)
    try:
        frame = _load_rtclab(path)
    except (ValueError, KeyError, TypeError, pd.errors.ParserError) as exc:
        msg = str(exc).replace(str(path), "").strip(": ")
        m = re.search(r"line (\d+)", msg)
        raise TraceFormatError(path, f"not a readable rtclab run ({msg})", int(m.group(1)) if m else None) from None
    meta = dict(frame.attrs.get("meta") or {})
    out = frame.copy()
    out["pc"] = pd.array([""] * len(out), dtype="string")
    out.attrs["meta"] = {"source": "rtclab", "path": str(path), "run": meta,
                         "peers": {}, "lacks": []}
    if meta.get("params"):
        out.attrs["meta"]["params"] = meta["params"]
    return out


# --------------------------------------------------------------------------------------
# webrtc-internals
# --------------------------------------------------------------------------------------


def _read_internals(path: Path, text: str, actors: Mapping[str, str] | None) -> pd.DataFrame:
    try:
        dump = json.loads(text)
    except json.JSONDecodeError as exc:
        stripped = text.rstrip()
        at_end = exc.pos >= len(stripped) or exc.lineno >= stripped.count("\n") + 1  # the error is on the last line
        problem = ("the JSON ends early: the file is truncated" if at_end
                   else f"not valid JSON ({exc.msg}, column {exc.colno})")
        raise TraceFormatError(path, problem, exc.lineno) from None
    if not isinstance(dump, Mapping) or not isinstance(dump.get("PeerConnections"), Mapping):
        raise TraceFormatError(path, f"JSON without a 'PeerConnections' object: not a webrtc-internals dump; expected {KNOWN}", 1)
    try:
        pcs, page = _wi.updates_from_internals(dump)
    except (TypeError, AttributeError, ValueError) as exc:  # a dump of an unexpected shape
        raise TraceFormatError(path, f"a webrtc-internals dump of a shape rtclab cannot read ({exc})") from None
    mapping = dict(actors) if actors else _wi.role_mapping(pcs)
    _check_mapping(path, mapping, pcs)
    rows = _wi.rows_from_updates(pcs, mapping, page)
    raw = dump["PeerConnections"]
    for pc_id in mapping:
        stats = raw[pc_id].get("stats") if isinstance(raw.get(pc_id), Mapping) else None
        if isinstance(stats, Mapping):
            rows += _internals_stats_rows(stats, mapping[pc_id], pc_id)
    lacks = _common_lacks(pcs, mapping)
    lacks.append("end-of-candidates: Chromium's webrtc-internals does not log the null icecandidate event "
                 "nor addIceCandidate(null)")
    if not any(isinstance(raw.get(p), Mapping) and raw[p].get("stats") for p in mapping):
        lacks.append("stats: the dump holds no getStats samples (no first frames, no selected pair)")
    meta = {
        "source": "webrtc-internals",
        "user_agent": str(dump.get("UserAgent", "")),
        "urls": {k: str(raw[k].get("url", "")) for k in mapping if isinstance(raw.get(k), Mapping)},
    }
    return _frame(path, rows, mapping, pcs, page, meta, lacks)


def _internals_stats_rows(stats: Mapping[str, Any], actor: str, pc_id: str) -> list[tuple[Any, ...]]:
    """First-frame rows (``inbound-rtp`` ``framesDecoded`` > 0) from webrtc-internals stats series."""
    rows: list[tuple[Any, ...]] = []
    for key, entry in stats.items():
        if not key.endswith("-framesDecoded") or not isinstance(entry, Mapping):
            continue
        sid = key[: -len("-framesDecoded")]
        try:
            values = json.loads(entry.get("values", "[]"))
            times = json.loads(stats.get(f"{sid}-timestamp", {}).get("values", "[]"))
        except (ValueError, AttributeError):
            continue
        offset = len(times) - len(values)
        for i, v in enumerate(values):
            if isinstance(v, (int, float)) and v > 0 and 0 <= i + offset < len(times):
                rows.append((float(times[i + offset]), actor, "media", "first-frame", "video", "",
                             f"{actor}:video", f"getStats {sid}: framesDecoded {v} (first sample above 0)", pc_id))
                break
    return rows


# --------------------------------------------------------------------------------------
# rtcstats
# --------------------------------------------------------------------------------------


def _read_rtcstats(path: Path, text: str, actors: Mapping[str, str] | None) -> pd.DataFrame:
    lines = text.split("\n")
    if lines[0].strip() != "RTCStatsDump":
        raise TraceFormatError(path, "the first line must be exactly 'RTCStatsDump'", 1)
    if len(lines) < 2 or not lines[1].strip():
        raise TraceFormatError(path, "no metadata line after 'RTCStatsDump': the file is truncated", 2)
    try:
        head = json.loads(lines[1])
    except ValueError as exc:
        raise TraceFormatError(path, f"the metadata line is not JSON ({exc})", 2) from None
    if not isinstance(head, dict):
        raise TraceFormatError(path, "the metadata line must be a JSON object", 2)
    if head.get("fileFormat") != 3:
        raise TraceFormatError(path, f"rtcstats file format {head.get('fileFormat')!r} is not supported (3 is)", 2)
    pcs: dict[str, list[_wi.Update]] = {}
    client: dict[str, Any] = {}
    page: list[tuple[float, str, Any, list[Any]]] = []
    last_t = 0.0
    base_stats: dict[str, dict[str, Any]] = {}
    sdp_base: dict[tuple[str, str], str] = {}
    first_frames: list[tuple[Any, ...]] = []
    selected: list[tuple[Any, ...]] = []
    n_stats = 0
    ends_cut = not text.endswith("\n")
    for no, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            last = no == len(lines) and ends_cut
            problem = "the last line is cut off: the file is truncated" if last else f"not JSON ({exc})"
            raise TraceFormatError(path, problem, no) from None
        if not isinstance(row, list):
            continue  # the format lets readers skip lines that are not arrays
        if len(row) < 3 or not isinstance(row[-1], (int, float)) or isinstance(row[-1], bool):
            raise TraceFormatError(path, "an event must be [method, pcId, value, ..., delta_ms] with a number last", no)
        method = _METHODS.get(str(row[0]), str(row[0]))
        pc = row[1]
        value = row[2] if len(row) > 3 else None
        extra = list(row[3:-1])
        last_t += float(row[-1])
        t = last_t
        if pc is None or method.startswith("navigator.") or (method == "create" and pc is None):
            if method == "create" and isinstance(value, dict):
                client.update(value)
            elif method.startswith("navigator.mediaDevices.getUserMedia"):
                page.append((t, "" if pc is None else str(pc), method, value))
            continue
        pc = str(pc)
        if method == "getStats":
            try:
                report = _merge_stats(base_stats.get(pc, {}), value if isinstance(value, dict) else {})
            except (TypeError, AttributeError):
                raise TraceFormatError(path, "a getStats value that is not a stats report", no) from None
            base_stats[pc] = report
            n_stats += 1
            first_frames.append((t, pc, report))
            continue
        if method in ("setLocalDescription", "setLocalDescriptionOnSuccess", "createOfferOnSuccess",
                      "createAnswerOnSuccess", "setRemoteDescription") and isinstance(value, dict):
            side = "remote" if method == "setRemoteDescription" else "local"
            value = _restore_sdp(sdp_base, (pc, side + str(value.get("type"))), value)
        pcs.setdefault(pc, []).append((t, method, value, extra))
    if not pcs:
        raise TraceFormatError(path, "an rtcstats dump without any peer connection event")
    mapping = dict(actors) if actors else _wi.role_mapping(pcs)
    _check_mapping(path, mapping, pcs)
    # getUserMedia of the page: Chromium tags it "8-0" (the page's prefix), rtcstats-js with null
    page_rows = []
    for t, pc, method, value in page:
        owner = next((p for p in mapping if pc and p.split("-", 1)[0] == pc.split("-", 1)[0]), next(iter(mapping)))
        page_rows.append((owner, (t, method, value, [])))
    for owner, upd in page_rows:
        pcs[owner].append(upd)
        pcs[owner].sort(key=lambda u: u[0])
    rows = _wi.rows_from_updates(pcs, mapping)
    rows += _stats_rows(first_frames, mapping)
    lacks = _common_lacks(pcs, mapping)
    if not any(u[1] == "onicecandidate" and not u[2] for p in pcs.values() for u in p):
        lacks.append("end-of-candidates: no null icecandidate event in the dump (Chromium's export never logs one)")
    if n_stats == 0:
        lacks.append("stats: the dump holds no getStats reports (no first frames, no selected pair)")
    meta = {
        "source": "rtcstats",
        "file_format": head.get("fileFormat"),
        "user_agent": str(head.get("userAgent") or ""),
        "urls": {k: str(next((u[3][0] for u in pcs[k] if u[1] == "create" and u[3]), "")) for k in mapping},
        "client": {k: client[k] for k in ("hardwareConcurrency", "deviceMemory") if k in client},
    }
    if head.get("url"):
        meta["page"] = f"{head.get('origin', '')}{head['url']}"
    return _frame(path, rows, mapping, pcs, [], meta, lacks)


def _merge_stats(base: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """A full report from the previous one and a (maybe compressed) delta."""
    ts = delta.get("t", delta.get("timestamp")) if not isinstance(delta.get("t"), dict) else None
    out: dict[str, Any] = {k: dict(v) for k, v in base.items()}
    for sid, rep in delta.items():
        if sid in ("t",) and not isinstance(rep, dict):
            continue
        if rep is None:
            out.pop(sid, None)
            continue
        if not isinstance(rep, dict):
            continue
        cur = out.setdefault(sid, {})
        for k, v in rep.items():
            name = _STATS_PROPS.get(str(k), str(k))
            if name == "type":
                v = _STATS_TYPES.get(str(v), v)
            cur[name] = v
    if ts is not None:
        for rep in out.values():
            rep.setdefault("timestamp", ts)
    return out


def _stats_rows(reports: list[tuple[float, str, dict[str, Any]]], mapping: Mapping[str, str]) -> list[tuple[Any, ...]]:
    """First frame per kind and the selected candidate pair, at the getStats call that first shows them."""
    rows: list[tuple[Any, ...]] = []
    seen: set[tuple[str, str]] = set()
    for t, pc, report in reports:
        actor = mapping.get(pc)
        if actor is None:
            continue
        for sid, rep in report.items():
            if rep.get("type") == "inbound-rtp":
                kind = str(rep.get("kind") or "video")
                shown = rep.get("framesDecoded") if kind == "video" else rep.get("packetsReceived")
                if isinstance(shown, (int, float)) and shown > 0 and (pc, kind) not in seen:
                    seen.add((pc, kind))
                    what = "framesDecoded" if kind == "video" else "packetsReceived"
                    rows.append((t, actor, "media", "first-frame", kind, "", f"{actor}:{kind}",
                                 f"getStats {sid}: {what} {shown} (first report above 0)", pc))
            if rep.get("type") == "transport" and rep.get("selectedCandidatePairId") and (pc, "pair") not in seen:
                pair = report.get(str(rep["selectedCandidatePairId"])) or {}
                local = report.get(str(pair.get("localCandidateId"))) or {}
                remote = report.get(str(pair.get("remoteCandidateId"))) or {}
                if local.get("candidateType") and remote.get("candidateType"):
                    seen.add((pc, "pair"))
                    rows.append((t, actor, "ice", "selected-pair", f"{local['candidateType']}/{remote['candidateType']}",
                                 "", "", f"getStats {rep['selectedCandidatePairId']}", pc))
    return rows


def _restore_sdp(base: dict[tuple[str, str], str], key: tuple[str, str], desc: dict[str, Any]) -> dict[str, Any]:
    """Undo rtcstats' description compression: a section that is only ``v=`` / ``m=`` is the previous one's."""
    sdp = desc.get("sdp")
    if not isinstance(sdp, str):
        return desc
    new = _sections(sdp)
    old = _sections(base.get(key, ""))
    if any(sec in ("v=", "m=") for sec in new):
        new = [old[i] if sec in ("v=", "m=") and i < len(old) else sec for i, sec in enumerate(new)]
        sdp = "\r\n".join(new).strip() + "\r\n"
    base[key] = sdp
    return {**desc, "sdp": sdp}


def _sections(sdp: str) -> list[str]:
    if not sdp:
        return []
    parts = sdp.replace("\r\n", "\n").split("\nm=")
    return [(("m=" + p) if i else p).strip().replace("\n", "\r\n") for i, p in enumerate(parts)]


# --------------------------------------------------------------------------------------
# shared
# --------------------------------------------------------------------------------------


def _check_mapping(path: Path, mapping: Mapping[str, str], pcs: Mapping[str, Any]) -> None:
    unknown = [k for k in mapping if k not in pcs]
    if unknown:
        raise TraceFormatError(path, f"no peer connection {unknown} in the dump (it has {list(pcs)})")
    bad = sorted({a for a in mapping.values() if a not in ("caller", "callee")})
    if bad:
        raise TraceFormatError(path, f"actors must be 'caller' or 'callee', got {bad}")


def _common_lacks(pcs: Mapping[str, list[Any]], mapping: Mapping[str, str]) -> list[str]:
    lacks = [
        "signaling: a browser dump records each peer connection's API calls and events, not the messages "
        "between the apps (no sent, delivered or dropped rows; nothing an app received before it created "
        "a peer connection)",
        "the user: no clicks (answer-to-media cannot be measured)",
        "the app's code: errors an app caught are invisible unless an API call failed",
    ]
    sides = set(mapping.values())
    if len(sides) < 2:
        lacks.append(f"the other peer: the dump holds only the {next(iter(sides), 'one')} side's peer connection(s)")
    if not pcs:
        lacks.append("peer connections: the dump holds none")
    return lacks


def _frame(path: Path, rows: list[tuple[Any, ...]], mapping: Mapping[str, str], pcs: Mapping[str, list[Any]],
           page: Any, meta: dict[str, Any], lacks: list[str]) -> pd.DataFrame:
    times = [r[0] for r in rows] + [u[0] for p in mapping for u in pcs.get(p, [])]
    t0 = min(times) if times else 0.0
    df = pd.DataFrame(rows, columns=[*COLUMNS, "pc"]) if rows else pd.DataFrame({c: [] for c in [*COLUMNS, "pc"]})
    df["t_ms"] = (df["t_ms"].astype("float64") - t0).round(3)
    df = df.sort_values("t_ms", kind="stable").reset_index(drop=True)
    pc = df["pc"].astype(object).where(df["pc"].notna(), "").astype(str)
    out = _normalise(df[list(COLUMNS)])
    out["pc"] = pd.array(pc.tolist(), dtype="string")
    meta.update({"path": str(path), "peers": dict(mapping), "t0_epoch_ms": t0, "lacks": lacks})
    out.attrs["meta"] = meta
    return out


# --------------------------------------------------------------------------------------
# anonymising
# --------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_MDNS = re.compile(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\.local\b")


class _Anonymizer:
    def __init__(self) -> None:
        self.v4: dict[str, str] = {}
        self.v6: dict[str, str] = {}
        self.mdns: dict[str, str] = {}

    def _v4(self, m: re.Match[str]) -> str:
        text = m.group(0)
        try:
            ip = ipaddress.IPv4Address(text)
        except ValueError:
            return text
        if ip.is_loopback or ip.is_unspecified:
            return text
        if text not in self.v4:
            n = len(self.v4) + 1
            self.v4[text] = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("198.18.0.0")) + n))
        return self.v4[text]

    def _v6(self, m: re.Match[str]) -> str:
        text = m.group(0)
        try:
            ip = ipaddress.IPv6Address(text)
        except ValueError:
            return text
        if ip.is_loopback or ip.is_unspecified:
            return text
        key = str(ip)
        if key not in self.v6:
            self.v6[key] = str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8::")) + len(self.v6) + 1))
        return self.v6[key]

    def _mdns(self, m: re.Match[str]) -> str:
        return self.mdns.setdefault(m.group(0).lower(), f"host{len(self.mdns) + 1}.local")

    def text(self, s: str) -> str:
        if not s:
            return s
        s = _MDNS.sub(self._mdns, s)
        s = _IPV6.sub(self._v6, s)
        return _IPV4.sub(self._v4, s)

    def any(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self.any(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.any(v) for v in obj]
        return obj


def anonymize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with IP addresses and mDNS names replaced consistently (see :func:`load_trace`).

    Examples
    --------
    >>> from rtclab.trace import Trace
    >>> tr = Trace(clock=lambda: 0.0)
    >>> tr.record("caller", "ice", "candidate", "gathered", detail="candidate:1 1 udp 1 10.0.1.10 5000 typ host")
    >>> anonymize_frame(tr.frame()).detail.iloc[0]
    'candidate:1 1 udp 1 198.18.0.1 5000 typ host'
    """
    anon = _Anonymizer()
    out = frame.copy()
    for col in ("value", "detail"):
        if col in out.columns:
            out[col] = pd.array([anon.text(str(v)) for v in out[col].astype(object).fillna("")], dtype="string")
    meta = dict(frame.attrs.get("meta") or {})
    for key in ("urls", "page", "path"):  # not the user agent: its version looks like an address
        if key in meta:
            meta[key] = anon.any(meta[key])
    meta["anonymized"] = {"ipv4": len(anon.v4), "ipv6": len(anon.v6), "mdns": len(anon.mdns)}
    out.attrs["meta"] = meta
    return out
