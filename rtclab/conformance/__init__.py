"""Conformance: the same scripted scenarios in headless Chromium and on :class:`rtclab.Peer`.

Chromium is the oracle. Each :class:`Scenario` follows one web-platform-tests
``webrtc/`` file (its name is ``<file>/<case>``), states one behaviour in its
title, and carries the steps twice: JavaScript for two ``RTCPeerConnection``
objects in one Chromium page (recorded by :data:`rtclab.browser.PAGE`'s
``RecordedPC``) and Python for two ``Peer`` objects. ``essentials(frame)``
reduces either frame to what the course relies on, and the comparison gives
``match``, ``documented difference`` (the scenario says why rtclab differs) or
``mismatch``.

Layout: :mod:`.core` (scenario, essentials helpers, verdicts),
:mod:`.harness` (the step vocabulary on both sides, a cuttable UDP relay),
:mod:`.scenarios` (one module per wpt file), :mod:`.runner` (Chromium in a
loopback-only network namespace, Peer on the simulated and the real network),
:mod:`.results` (``data/chromium/``), :mod:`.table` (the README table),
:mod:`.cli` (``python -m rtclab.conformance list|record|table|check``).

Examples
--------
>>> from rtclab import conformance
>>> sc = conformance.get("RTCPeerConnection-addIceCandidate/before-remote-description")
>>> sc.wpt_file
'RTCPeerConnection-addIceCandidate'
>>> conformance.run_sim(sc)  # doctest: +SKIP
"""

from __future__ import annotations

from .core import DOCUMENTED, MATCH, MISMATCH, SCENARIOS, Scenario, compare, verdict
from .runner import run_sim, selected

__all__ = [
    "DOCUMENTED",
    "MATCH",
    "MISMATCH",
    "SCENARIOS",
    "Scenario",
    "all_scenarios",
    "compare",
    "get",
    "run_sim",
    "verdict",
]


def all_scenarios() -> list[Scenario]:
    """Every scenario, in table order.

    Examples
    --------
    >>> len(all_scenarios()) >= 20
    True
    """
    return selected(None)


def get(name: str) -> Scenario:
    """The scenario called ``name`` (``<wpt file>/<case>``).

    Examples
    --------
    >>> get("RTCRtpSender-replaceTrack/other-kind").title.startswith("replaceTrack")
    True
    """
    return selected([name])[0]
