"""Access to the files in ``data/`` and the reference traces kept there.

``data/traces/`` holds one CSV per flow and topology, made on the simulated
network with fixed seeds by :func:`regenerate_traces` (``python -m rtclab
traces``). ``tests/test_reference.py`` re-runs each and compares, so a
dependency upgrade that changes behaviour shows up as a readable diff.

``data/chromium/`` holds what headless Chromium did: each conformance scenario
(``scenarios/``) and each course flow with a browser side (``flows/``),
recorded by ``python -m rtclab.conformance record``; :func:`chromium_trace`
loads one, so a notebook can show Chromium beside rtclab without a browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["REFERENCE_RUNS", "chromium_trace", "chromium_traces", "compare_to_reference", "path", "reference_runs", "regenerate_traces"]

_ROOT = Path(__file__).resolve().parent.parent / "data"

#: Parameters of every reference run: name -> (flow, params).
REFERENCE_RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    f"{flow}-{topo}": (flow, {"network": "sim", "topology": topo, "seed": 7, "answer_delay_ms": 1000.0})
    for flow in ("basic", "mdn", "answer-on-click", "offer-before-tracks", "counteroffer", "vanilla", "glare", "perfect",
                 "forgot-candidates", "queue-on-click", "article")
    for topo in ("lan", "nat")
} | {
    # a relay-only callee needs a TURN server in the network
    f"relay-until-accepted-{topo}": ("relay-until-accepted", {"network": "sim", "topology": topo, "seed": 7,
                                                              "answer_delay_ms": 1000.0, "turn": True})
    for topo in ("lan", "nat")
}


def path(name: str = "") -> Path:
    """The path of ``name`` inside the project's ``data/`` folder.

    Examples
    --------
    >>> path("traces").name
    'traces'
    """
    return _ROOT / name


def chromium_traces() -> list[str]:
    """Names of the stored Chromium traces: flows (``basic-browser-caller``...) and scenarios.

    Examples
    --------
    >>> "basic-browser-caller" in chromium_traces()
    True
    """
    folder = path("chromium")
    flows = sorted(p.stem for p in (folder / "flows").glob("*.csv"))
    scenarios = sorted(p.stem.replace("__", "/") for p in (folder / "scenarios").glob("*.csv"))
    return flows + scenarios


def chromium_trace(name: str) -> Any:
    """A stored Chromium trace as an event frame (``frame.attrs["meta"]`` says the Chromium version).

    Parameters
    ----------
    name
        A course flow with Chromium on one side (``"basic-browser-caller"``,
        ``"counteroffer-browser-callee"``...) or a conformance scenario
        (``"RTCPeerConnection-iceConnectionState/connected"``); see :func:`chromium_traces`.

    Examples
    --------
    >>> frame = chromium_trace("basic-browser-caller")
    >>> sorted(set(frame.actor) & {"caller", "callee"})
    ['callee', 'caller']
    """
    from .trace import load

    folder = path("chromium")
    candidates = [folder / "flows" / f"{name}.csv", folder / "scenarios" / f"{name.replace('/', '__')}.csv"]
    for candidate in candidates:
        if candidate.exists():
            return load(candidate)
    raise KeyError(f"no stored Chromium trace {name!r}; available: {', '.join(chromium_traces())}")


def reference_runs() -> dict[str, tuple[str, dict[str, Any]]]:
    """A copy of :data:`REFERENCE_RUNS`."""
    return {k: (f, dict(p)) for k, (f, p) in REFERENCE_RUNS.items()}


def compare_to_reference(name: str, *, columns: tuple[str, ...] = ("t_ms", "actor", "kind", "name", "value", "prev", "ref", "detail"), context: int = 40) -> str:
    """Re-run reference ``name`` and return a unified diff against its CSV ("" if identical).

    Examples
    --------
    >>> compare_to_reference("basic-lan")  # doctest: +SKIP
    ''
    """
    import difflib

    from .lab import run
    from .trace import load

    flow, params = REFERENCE_RUNS[name]
    fresh = run(flow, **params).events
    ref = load(path("traces") / f"{name}.csv")
    a = ref[list(columns)].to_csv(index=False).splitlines()
    b = fresh[list(columns)].to_csv(index=False).splitlines()
    if a == b:
        return ""
    diff = difflib.unified_diff(a, b, fromfile=f"data/traces/{name}.csv", tofile="this run", lineterm="", n=1)
    return "\n".join(list(diff)[: context * 3])


def regenerate_traces(out: str | Path | None = None) -> list[Path]:
    """Re-run every reference run and write its CSV; returns the paths written."""
    from .lab import run

    folder = Path(out) if out else path("traces")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (flow, params) in REFERENCE_RUNS.items():
        written.append(run(flow, **params).save(folder / f"{name}.csv"))
    return written
