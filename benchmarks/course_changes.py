"""The course's share of #16, each change against the code before it: ``python -m benchmarks.course_changes``.

One process, interleaved (the code before and the code now take turns on the
same workload, so both see the same machine load), as ``benchmarks.changes``
does for the simulation. Writes ``benchmarks/results/course_changes.json``.

=====================  ========================================================
change                 "before"
=====================  ========================================================
``test_process``       a test process's imports with jsonschema free to import
                       ``rfc3987_syntax`` (a new interpreter each time)
``bytecode``           ``import rtclab`` with ``PYTHONDONTWRITEBYTECODE`` set and
                       no compiled rtclab modules (a new interpreter each time)
``summary_figure``,    ``rtclab/plots.py`` as it was at :data:`BEFORE_REV` (read
``beside_figure``      from git): a declutter that draws every round and leaves
                       the figure stale, ``beside`` without declutter
=====================  ========================================================

A figure is timed as a notebook shows it: built, drawn again if still stale (the
post-execute hook), then rendered to PNG as the inline backend does.

Not a test: no figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.changes import _pair_ms  # interleaved medians, as for the simulation's changes

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "course_changes.json"
#: the last commit before this round's course changes
BEFORE_REV = "4f127ca"


def _child(code: str, env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + system) of a new interpreter running ``code``."""
    before = os.times()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=120)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def process_imports(n: int) -> dict[str, Any]:
    imports = "import nbval.plugin, xdist.plugin"
    return {"cpu_s": _pair_ms(lambda: _child(imports),
                           lambda: _child("import sys; sys.modules.setdefault('rfc3987_syntax', None); " + imports), n)}


def bytecode(n: int) -> dict[str, Any]:
    import compileall

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    compileall.compile_dir(str(ROOT / "rtclab"), quiet=1)
    caches = sorted((ROOT / "rtclab").rglob("__pycache__"))

    def without() -> float:
        aside = [c.with_name("__pycache__.aside") for c in caches]
        for c, a in zip(caches, aside):
            c.rename(a)
        try:
            return _child("import rtclab", env)
        finally:
            for c, a in zip(caches, aside):
                a.rename(c)

    return {"cpu_s": _pair_ms(without, lambda: _child("import rtclab", env), n), "pycache_dirs": len(caches)}


def _old_plots() -> types.ModuleType:
    """rtclab/plots.py as it was at BEFORE_REV, imported as a module of its own."""
    git = shutil.which("git")
    if git is None:
        raise SystemExit("git is needed to read the code before the change")
    proc = subprocess.run([git, "show", f"{BEFORE_REV}:rtclab/plots.py"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"cannot read rtclab/plots.py at {BEFORE_REV} (a shallow clone?): {proc.stderr.strip()}")
    module = types.ModuleType("rtclab._plots_before")
    module.__package__ = "rtclab"
    sys.modules[module.__name__] = module
    exec(compile(proc.stdout, f"rtclab/plots.py@{BEFORE_REV}", "exec"), module.__dict__)
    return module


def _shown(make: Callable[[], Any]) -> float:
    """Wall seconds to build a figure and show it as a notebook does."""
    import matplotlib.pyplot as plt

    t = time.perf_counter()
    fig = make()
    if fig.stale:  # IPython's post-execute hook: pyplot's draw_all draws every stale figure
        fig.canvas.draw()
    fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")  # the inline backend's rendering
    elapsed = time.perf_counter() - t
    plt.close(fig)
    return elapsed


def figures(n: int) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import rtclab
    from rtclab import plots

    old = _old_plots()
    run = rtclab.run("basic", hold_s=30, cut_at_s=5, cut_for_s=10)
    chromium = rtclab.data.chromium_trace("RTCPeerConnection-iceConnectionState/path-heals")
    for module in (old, plots):  # warm fonts and caches
        _shown(lambda m=module: m.summary(run))
    return {
        "summary_figure_s": _pair_ms(lambda: _shown(lambda: old.summary(run)), lambda: _shown(lambda: plots.summary(run)), n),
        "beside_figure_s": _pair_ms(lambda: _shown(lambda: old.beside(run, chromium, plot="states")),
                                 lambda: _shown(lambda: plots.beside(run, chromium, plot="states")), n),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.course_changes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--out", default=str(OUT))
    ns = parser.parse_args(argv)
    n = 3 if ns.quick else 9
    load_before = os.getloadavg()
    results = {"test_process": process_imports(n), "bytecode": bytecode(n), **figures(n)}
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python -m benchmarks.course_changes" + (" --quick" if ns.quick else ""),
        "before": BEFORE_REV,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "changes": results,
    }
    Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
