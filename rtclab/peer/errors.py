"""Browser errors (``browser_errors``): the browser's named exceptions and strict candidate parsing.

What the browser does
    API calls reject with a ``DOMException`` whose ``name`` says what went
    wrong (``InvalidStateError``, ``OperationError``, ``InvalidAccessError``)
    or with a ``TypeError`` from the WebIDL layer. ``addIceCandidate`` with no
    remote description is an ``InvalidStateError``; an unparsable candidate an
    ``OperationError``; a candidate with neither ``sdpMid`` nor
    ``sdpMLineIndex`` a ``TypeError`` (Chromium accepts a leading ``a=``).
What aiortc 1.16 does
    ``addIceCandidate`` before a remote description only logs a warning nobody
    sees and, on the answering side, drops the candidate; a candidate with
    neither ``sdpMid`` nor ``sdpMLineIndex`` is a ``ValueError``; its
    ``candidate_from_sdp`` accepts garbage such as a leading ``a=`` as part of
    the foundation; other failures surface as its own exception classes or
    as plain Python errors.
What rtclab emulates
    Candidates are parsed strictly (RFC 8839 grammar) by
    :func:`parse_candidate`: garbage raises :class:`OperationError`. An
    unparsable SDP is an :class:`OperationError`, an unknown description
    type a ``TypeError``, a description in the wrong state an
    :class:`InvalidStateError` (see :mod:`rtclab.peer.sdp` and
    :mod:`rtclab.peer.descriptions`). mDNS (``.local``) candidates are
    rejected with an :class:`OperationError` saying so: aiortc would resolve
    them by multicast, which the offline lab does not allow.
    :meth:`ErrorsMixin._translate` maps aiortc's exceptions onto the
    browser's names. Switch: ``Peer(browser_errors=False)``.
"""

from __future__ import annotations

import ipaddress
import re

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp


class DOMException(Exception):
    """Base of the browser's named errors; ``name`` is the DOMException name."""

    name = "DOMException"


class InvalidStateError(DOMException):
    """The call is not allowed in the current state (browser ``InvalidStateError``)."""

    name = "InvalidStateError"


class OperationError(DOMException):
    """The operation failed, e.g. an unparsable candidate or SDP (browser ``OperationError``)."""

    name = "OperationError"


class InvalidAccessError(DOMException):
    """The call's arguments do not fit the connection (browser ``InvalidAccessError``)."""

    name = "InvalidAccessError"


def error_name(exc: BaseException) -> str:
    """The browser-style name of an exception (``InvalidStateError``, ``TypeError``...)."""
    if isinstance(exc, DOMException):
        return exc.name
    return type(exc).__name__


# --- candidates -----------------------------------------------------------------------

_CANDIDATE_RE = re.compile(
    r"^candidate:(?P<foundation>[A-Za-z0-9+/]{1,32}) (?P<component>\d{1,3}) "
    r"(?P<transport>udp|tcp|UDP|TCP) (?P<priority>\d{1,10}) (?P<address>\S{1,253}) "
    r"(?P<port>\d{1,5}) typ (?P<type>host|srflx|prflx|relay)(?P<ext>( \S{1,64} \S{1,256})*)$"
)
MAX_CANDIDATE_LENGTH = 1024


def parse_candidate(line: str) -> RTCIceCandidate:
    """Parse a candidate line strictly, as a browser does.

    Accepts ``candidate:...`` (and, like Chrome, the same with a leading
    ``a=``). Raises :class:`OperationError` with a clear message otherwise.

    Examples
    --------
    >>> c = parse_candidate("candidate:1 1 udp 2130706431 192.168.1.10 50000 typ host")
    >>> (c.type, c.ip, c.port)
    ('host', '192.168.1.10', 50000)
    """
    if not isinstance(line, str):
        raise TypeError(f"candidate must be a string, not {type(line).__name__}")
    if len(line) > MAX_CANDIDATE_LENGTH:
        raise OperationError(f"Error processing ICE candidate: too long ({len(line)} characters)")
    text = line.strip()
    if text.startswith("a="):
        text = text[2:]
    m = _CANDIDATE_RE.match(text)
    if m is None:
        raise OperationError(f"Error processing ICE candidate: cannot parse {_short(line)!r}")
    address = m["address"]
    if address.lower().endswith(".local"):
        raise OperationError(
            "Error processing ICE candidate: mDNS (.local) candidates are not supported in rtclab "
            "(aiortc would resolve them by multicast)"
        )
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise OperationError(
            f"Error processing ICE candidate: {address!r} is not an IP address"
        ) from None
    port, component = int(m["port"]), int(m["component"])
    if not 0 <= port <= 65535 or not 1 <= component <= 256:
        raise OperationError(f"Error processing ICE candidate: port or component out of range in {_short(line)!r}")
    ext = m["ext"].split()
    for key, value in zip(ext[::2], ext[1::2]):
        if key == "rport" and not value.isdigit():
            raise OperationError(f"Error processing ICE candidate: bad rport {value!r}")
    return candidate_from_sdp(text[len("candidate:"):])


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class ErrorsMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: aiortc's exceptions under the browser's names."""

    def _translate(self, name: str, exc: Exception) -> Exception:
        """Map aiortc's exceptions onto the browser's error names."""
        if isinstance(exc, (DOMException, TypeError)):
            return exc
        cls = type(exc).__name__
        if cls == "InvalidStateError":
            return InvalidStateError(str(exc))
        if cls == "InvalidAccessError":
            return InvalidAccessError(str(exc))
        if cls == "OperationError":
            return OperationError(str(exc))
        if name == "setRemoteDescription" or name == "setLocalDescription":
            return OperationError(f"Failed to set {'remote' if 'Remote' in name else 'local'} description: {cls}: {exc}")
        if name == "addIceCandidate":
            return OperationError(f"Error processing ICE candidate: {cls}: {exc}")
        return exc
