"""Determinism under starvation: ``python -m benchmarks.determinism [--repeats 3] [--hogs 3]``.

A simulated run must give the same frame on a quiet machine and on a machine
so busy that every step takes many times longer in real time, because nothing
in the simulation may read the real clock. This plays the runs most sensitive
to a leak (long links, where a DTLS handshake spans more real time; media-path
loss, where one extra packet shifts every later loss draw; glare, with many
events at the same instant) once in a quiet child process, then ``--repeats``
times in child processes started at the lowest priority (``nice 19``) next to
``--hogs`` busy loops, each with another ``PYTHONHASHSEED``. Each run is
fingerprinted by a hash of its whole events frame (every row and column, with
packet rows) and its first-frame times. Writes
``benchmarks/results/determinism.json`` and prints whether every starved run
matched the quiet one. Expect minutes per starved repeat: that is the point.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "determinism.json"
#: a starved child is slow on purpose, but never allowed to hang the benchmark
CHILD_TIMEOUT_S = 1800.0

#: name -> (flow, parameters): the runs most exposed to a real-clock leak
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "basic-link200": ("basic", {"link_latency_ms": 200}),
    "basic-loss30": ("basic", {"link_loss": 0.3}),
    "basic-loss50": ("basic", {"link_loss": 0.5}),
    "basic-nat-link50": ("basic", {"link_latency_ms": 50, "topology": "nat"}),
    "counteroffer-link200": ("counteroffer", {"link_latency_ms": 200}),
    "glare-signaling500": ("glare", {"signaling_latency_ms": 500}),
}


def fingerprints() -> dict[str, dict[str, Any]]:
    """Play every case in this process and fingerprint its frame."""
    import rtclab

    out: dict[str, dict[str, Any]] = {}
    for name, (flow, params) in CASES.items():
        run = rtclab.run(flow, record_packets=True, **params)
        frame = run.events.to_csv(index=False)
        first = {k: (None if v != v else round(float(v), 3)) for k, v in run.metrics.filter(like="t_first_frame").items()}
        out[name] = {"sha1": hashlib.sha1(frame.encode()).hexdigest(), "rows": len(run.events), "outcome": run.outcome, **first}
    return out


def _child(hashseed: int, starved: bool) -> dict[str, Any]:
    env = dict(os.environ, PYTHONHASHSEED=str(hashseed))
    cmd = [sys.executable, "-m", "benchmarks.determinism", "--child"]
    if starved:
        cmd = ["nice", "-n", "19", *cmd]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=CHILD_TIMEOUT_S)
    return {"hashseed": hashseed, "starved": starved, "wall_s": round(time.perf_counter() - t0, 1),
            "cases": json.loads(done.stdout.strip().splitlines()[-1])}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.determinism", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=_positive, default=3,
                        help="starved runs, at least 1 (each in a new process)")
    parser.add_argument("--hogs", type=int, default=3, help="busy-loop processes competing for the CPU")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(fingerprints()))
        return 0

    quiet = _child(1, starved=False)
    hog_code = "while True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog_code]) for _ in range(args.hogs)]
    try:
        starved = [_child(100 + i, starved=True) for i in range(args.repeats)]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    mismatches = [
        {"hashseed": run["hashseed"], "case": name}
        for run in starved
        for name, fp in run["cases"].items()
        if fp != quiet["cases"][name]
    ]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python -m benchmarks.determinism " + " ".join(argv if argv is not None else sys.argv[1:]),
        "hogs": args.hogs,
        "quiet": quiet,
        "starved": starved,
        "mismatches": mismatches,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    slow = max(run["wall_s"] for run in starved) / max(quiet["wall_s"], 1e-9)
    print(f"{len(CASES)} cases; quiet run {quiet['wall_s']} s; {len(starved)} starved runs "
          f"(up to x{slow:.0f} slower) next to {args.hogs} busy loops")
    print("every starved frame matches the quiet one" if not mismatches else f"MISMATCHES: {mismatches}")
    print(f"wrote {args.out}")
    return 0 if not mismatches else 1


if __name__ == "__main__":
    raise SystemExit(main())
