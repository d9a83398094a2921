"""Session descriptions as they leave and enter the peer: candidate stripping, m-sections, checks.

What the browser does
    With trickle ICE, ``localDescription`` carries only the candidates
    gathered so far and the m-lines hold placeholder addresses (``c=IN IP4
    0.0.0.0``, port 9) until a candidate is known. ``setRemoteDescription``
    rejects an unparsable SDP with ``OperationError`` and an unknown ``type``
    with ``TypeError``.
What aiortc 1.16 does
    ``localDescription`` holds every candidate and ``a=end-of-candidates``
    (it gathers before ``setLocalDescription`` returns); its SDP parser
    raises plain Python errors on garbage.
What rtclab emulates
    :func:`strip_candidates` gives the trickle form of an SDP;
    ``_with_candidates`` puts back the candidates announced so far;
    ``_as_description`` and ``_check_sdp`` validate a description the way
    the browser's WebIDL layer and SDP parser do; ``_summary`` is the short
    form recorded in ``call`` rows.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCSessionDescription

from .errors import OperationError, _short


def strip_candidates(sdp: str) -> str:
    """Remove candidate lines and ``a=end-of-candidates`` from an SDP (trickle form).

    Also resets ``c=`` and the m-line ports to the placeholder values a browser
    puts in a description before any candidate is known (``0.0.0.0``, port 9).

    Examples
    --------
    >>> strip_candidates("v=0\\r\\nm=video 5000 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 10.0.0.1\\r\\n"
    ...                  "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\\r\\na=end-of-candidates\\r\\n")
    'v=0\\r\\nm=video 9 UDP/TLS/RTP/SAVPF 96\\r\\nc=IN IP4 0.0.0.0\\r\\n'
    """
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") or line.startswith("a=end-of-candidates"):
            continue
        if line.startswith("m="):
            parts = line.split(" ")
            if len(parts) > 1 and parts[1] != "0":
                parts[1] = "9"
            line = " ".join(parts)
        elif line.startswith("c=IN IP4 "):
            line = "c=IN IP4 0.0.0.0"
        elif line.startswith("c=IN IP6 "):
            line = "c=IN IP6 ::"
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _candidates_in(sdp: str) -> list[tuple[str, str | None, int]]:
    """(candidate line, mid, m-line index) of each distinct candidate in an SDP."""
    found: list[tuple[str, str | None, int]] = []
    seen: set[str] = set()
    index, mid = -1, None
    pending: list[str] = []

    def flush() -> None:
        for line in pending:
            key = line.split(" ", 1)[1] if " " in line else line
            if key not in seen:
                seen.add(key)
                found.append((line, mid, index))
        pending.clear()

    for line in sdp.splitlines():
        if line.startswith("m="):
            flush()
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:"):].strip()
        elif line.startswith("a=candidate:") and index >= 0:
            pending.append(line[2:])
    flush()
    return found


def _with_candidates(stripped: str, announced: dict[str, tuple[str | None, int]]) -> str:
    """Put back, into a stripped SDP, the candidate lines already announced."""
    if not announced:
        return stripped
    by_section: dict[int, list[str]] = {}
    for line, (_mid, idx) in announced.items():
        by_section.setdefault(idx, []).append("a=" + line)
    out: list[str] = []
    section = -1
    lines = stripped.splitlines()
    for i, line in enumerate(lines):
        out.append(line)
        if line.startswith("m="):
            section += 1
        nxt = lines[i + 1] if i + 1 < len(lines) else "m="
        if section >= 0 and nxt.startswith("m="):
            out.extend(by_section.get(section, []))
    return "\r\n".join(out) + "\r\n"


def _mids(sdp: str) -> list[str | None]:
    """The mid of each m-section, in order."""
    mids: list[str | None] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            mids.append(None)
        elif line.startswith("a=mid:") and mids:
            mids[-1] = line[len("a=mid:"):].strip()
    return mids


def _ufrags(sdp: str) -> list[str | None]:
    """The ICE ufrag of each m-section, in order (a session-level one applies to all)."""
    session: str | None = None
    ufrags: list[str | None] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            ufrags.append(session)
        elif line.startswith("a=ice-ufrag:"):
            value = line[len("a=ice-ufrag:"):].strip()
            if ufrags:
                ufrags[-1] = value
            else:
                session = value
    return ufrags


_SDP_TYPES = ("offer", "answer", "pranswer", "rollback")
MAX_SDP_LENGTH = 256 * 1024


def _as_description(desc: Any) -> dict[str, str]:
    """Validate a description dict the way the browser's WebIDL layer does."""
    if isinstance(desc, RTCSessionDescription):
        desc = {"type": desc.type, "sdp": desc.sdp}
    if not isinstance(desc, dict):
        raise TypeError(f"description must be a dict with 'type' and 'sdp', not {type(desc).__name__}")
    kind = desc.get("type")
    if kind not in _SDP_TYPES:
        raise TypeError(f"The provided value {kind!r} is not a valid enum value of type RTCSdpType.")
    sdp = desc.get("sdp", "")
    if sdp is None:
        sdp = ""
    if not isinstance(sdp, str):
        raise TypeError(f"sdp must be a string, not {type(sdp).__name__}")
    return {"type": kind, "sdp": sdp}


def _check_sdp(sdp: str) -> None:
    """Raise OperationError unless ``sdp`` looks like a session description."""
    if len(sdp) > MAX_SDP_LENGTH:
        raise OperationError(f"Failed to parse SessionDescription: too long ({len(sdp)} characters)")
    lines = [line for line in sdp.splitlines() if line]
    if not lines or lines[0] != "v=0":
        raise OperationError(f"Failed to parse SessionDescription. {_short(sdp, 40)!r} Expect line: v=")
    for line in lines:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise OperationError(f"Failed to parse SessionDescription. Invalid SDP line: {_short(line, 60)!r}")
    for required in ("o=", "s=", "t="):
        if not any(line.startswith(required) for line in lines):
            raise OperationError(f"Failed to parse SessionDescription. Missing line: {required}")
    for line in lines:
        if line.startswith("m="):
            parts = line[2:].split(" ")
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise OperationError(f"Failed to parse SessionDescription. Invalid m= line: {_short(line, 60)!r}")


def _summary(desc: dict[str, str]) -> str:
    media = [line[2:].split(" ", 1)[0] for line in desc["sdp"].splitlines() if line.startswith("m=")]
    cands = sum(1 for line in desc["sdp"].splitlines() if line.startswith("a=candidate:"))
    return f"{desc['type']} m=[{','.join(media)}] candidates={cands}"
