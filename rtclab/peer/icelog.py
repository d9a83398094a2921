"""aioice's connectivity-check log turned into ``ice`` rows.

What the browser does
    Chromium exposes candidate pairs through ``getStats()`` and
    ``chrome://webrtc-internals``; a page sees no per-check events.
What aiortc 1.16 / aioice 0.13 do
    aioice logs each candidate pair's state change at INFO on the
    ``aioice.ice`` logger (``Connection(N) Check CandidatePair(...) State.X ->
    State.Y``), and its failures (``ICE failed``, ``Consent to send expired``,
    peer-reflexive candidates).
What rtclab records
    A handler on that logger routes each line to the :class:`Peer` that owns
    connection ``N`` and records it as an ``ice`` ``pair`` row (or an ``ice``
    ``log`` row), so the course can show the checks. The handler stops
    propagation to the user's root handlers (aioice is chatty at INFO).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import Peer


_CONNECTIONS: dict[int, Peer] = {}
_CHECK_RE = re.compile(r"^Connection\((\d+)\) Check CandidatePair\((.*?)\) State\.(\w+) -> State\.(\w+)$")


class _AioiceLog(logging.Handler):
    """Turns aioice's INFO log lines into ``ice`` rows of the peer that owns the connection."""

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - exercised via runs
        try:
            msg = record.getMessage()
        except Exception:
            return
        m = re.match(r"^Connection\((\d+)\) ", msg)
        if not m:
            return
        peer = _CONNECTIONS.get(int(m.group(1)))
        if peer is None or peer._closed:
            return
        check = _CHECK_RE.match(msg)
        if check:
            state = check.group(4).lower().replace("_", "-")
            peer._rec("ice", "pair", state, detail=check.group(2))
        elif "ICE failed" in msg or "Consent to send expired" in msg or "peer reflexive" in msg:
            # aioice names prflx candidates with a random foundation: drop it (determinism)
            text = re.sub(r"Candidate\(\S+ ", "Candidate(", msg.split(") ", 1)[1])
            peer._rec("ice", "log", text.split(" Candidate(")[0], detail=text)


_LOG_HANDLER = _AioiceLog(level=logging.INFO)


def _install_log_handler() -> None:
    log = logging.getLogger("aioice.ice")
    if _LOG_HANDLER not in log.handlers:
        log.addHandler(_LOG_HANDLER)
    if log.getEffectiveLevel() > logging.INFO or log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    # aioice logs each check at INFO; keep them out of the user's root handlers
    log.propagate = False
