"""Access to the files in ``data/`` and the reference traces kept there.

``data/traces/`` holds one CSV per flow and topology, made on the simulated
network with fixed seeds by :func:`regenerate_traces` (``python -m rtclab
traces``). ``tests/test_reference.py`` re-runs each and compares, so a
dependency upgrade that changes behaviour shows up as a readable diff.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["REFERENCE_RUNS", "compare_to_reference", "path", "reference_runs", "regenerate_traces"]

_ROOT = Path(__file__).resolve().parent.parent / "data"

#: Parameters of every reference run: name -> (flow, params).
REFERENCE_RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    f"{flow}-{topo}": (flow, {"network": "sim", "topology": topo, "seed": 7, "answer_delay_ms": 1000.0})
    for flow in ("basic", "mdn", "answer-on-click", "offer-before-tracks", "counteroffer", "vanilla", "glare", "perfect",
                 "forgot-candidates", "queue-on-click")
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
