"""rtclab: see WebRTC negotiation happen.

Two real aiortc peers in one notebook, an asynchronous signaling channel, a
simulated network, and every event on one clock in one pandas frame.

Examples
--------
>>> import rtclab
>>> run = rtclab.run("basic", seed=1)  # doctest: +SKIP
>>> run.outcome  # doctest: +SKIP
'connected'

Your own apps, written like the built-in flows (see :class:`rtclab.App`):

>>> async def caller(app): ...  # doctest: +SKIP
>>> async def callee(app): ...  # doctest: +SKIP
>>> rtclab.run(caller=caller, callee=callee, topology="nat")  # doctest: +SKIP
"""

from __future__ import annotations

import logging

from . import interfaces as _interfaces  # noqa: F401 - first: rtclab.network must see its aioice wrapper
from .checks import check_setup
from .diagnose import Diagnosis, Finding, diagnose
from .exercises import Verdict, check
from .flows import FLOWS, Flow, as_flow, get_flow
from .internals import load_webrtc_internals
from .lab import DEFAULTS, App, Run, User, arun, flow_source, run
from .metrics import compute_metrics, exposed_candidates, outcome
from .params import RunParams
from .peer import InvalidAccessError, InvalidStateError, OperationError, Peer
from .signaling import Channel, SignalingError
from .sweeps import sweep
from .trace import Trace, capture_events, load, save
from .traces import TraceFormatError, load_trace

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS",
    "FLOWS",
    "App",
    "Channel",
    "Diagnosis",
    "Finding",
    "Flow",
    "InvalidAccessError",
    "InvalidStateError",
    "OperationError",
    "Peer",
    "Run",
    "RunParams",
    "SignalingError",
    "Trace",
    "TraceFormatError",
    "User",
    "Verdict",
    "__version__",
    "arun",
    "as_flow",
    "capture_events",
    "check",
    "check_setup",
    "compute_metrics",
    "diagnose",
    "exposed_candidates",
    "flow_source",
    "get_flow",
    "load",
    "load_trace",
    "load_webrtc_internals",
    "outcome",
    "run",
    "save",
    "sweep",
    "versions",
]

_LAZY = {"plots", "widgets", "network", "data", "browser", "server", "conformance", "exercises"}


def __getattr__(name: str):  # lazy submodules: ``rtclab.plots`` without importing matplotlib up front
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

logging.getLogger(__name__).addHandler(logging.NullHandler())


def versions() -> dict[str, str]:
    """Versions of rtclab and the packages it builds on.

    Examples
    --------
    >>> sorted(versions())[:3]
    ['aioice', 'aiortc', 'matplotlib']
    """
    import platform
    from importlib.metadata import version

    out = {name: version(name) for name in ("aioice", "aiortc", "matplotlib", "pandas")}
    out["python"] = platform.python_version()
    out["rtclab"] = __version__
    return out
