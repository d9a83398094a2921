"""The full soak: ``python -m benchmarks.soak [--runs 200] [--networks sim,real]``.

Plays ``--runs`` calls per network (``sim`` and ``real``), cycling through
every flow (and, on the sim, through impairments: reordering, signaling loss
and duplication, a symmetric NAT, media-path loss), one after another in this
process, and checks after each run that it left nothing behind. Writes
``benchmarks/results/soak.json`` and prints a summary, per network and flow:

* ``runs``; ``hangs``: runs still going when the *harness* timeout
  (``--harness-s``, wall seconds) expired — not runs that reached their own
  deadline, which end as ``timeout`` outcomes; ``crashes``: exceptions that
  escaped ``rtclab.run()``; the outcomes;
* after each run, compared with the baseline taken after a warm-up: open file
  descriptors, live asyncio tasks, threads (aiortc keeps one executor thread
  for the process, so +1 is expected once), ``rtclab-*`` threads and whether
  the simulation's patches are still installed; ``leaky_runs`` counts the runs
  where any of them was above baseline;
* resident memory (RSS) at the start, the middle and the end of each network's
  runs, and its growth (whole, and over the second half: a soak that levels
  off grows little there).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "soak.json"

#: sim impairments cycled through, so every kind of ending is exercised
SIM_VARIANTS: list[dict[str, Any]] = [
    {},
    {"topology": "nat", "signaling_latency_ms": 50, "jitter_ms": 40, "reorder": 0.5},
    {"loss": 0.3, "duplicate": 0.1, "deadline_s": 30},
    {"topology": "nat", "nat": "symmetric", "deadline_s": 30},
    {"link_loss": 0.3, "deadline_s": 30},
]


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def live_tasks() -> int:
    """asyncio tasks alive anywhere in the process."""
    gc.collect()
    return sum(1 for t in gc.get_objects() if isinstance(t, asyncio.Task) and not t.done())


def rss_mb() -> float:
    """Resident set size of this process, in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def snapshot() -> dict[str, Any]:
    """fds, threads, tasks, rtclab threads, sim patches, RSS now."""
    from rtclab.network import patches_installed

    return {
        "fds": open_fds(),
        "threads": threading.active_count(),
        "tasks": live_tasks(),
        "rtclab_threads": sum(1 for t in threading.enumerate() if t.name.startswith("rtclab")),
        "patched": patches_installed(),
        "rss_mb": rss_mb(),
    }


def bounded_run(flow: str, harness_s: float, params: dict[str, Any]) -> tuple[Any, str | None, bool]:
    """(Run or None, crash description or None, hung) of one ``rtclab.run`` in a daemon thread."""
    import rtclab

    box: list[Any] = []

    def target() -> None:
        try:
            box.append(rtclab.run(flow, **params))
        except BaseException as exc:  # noqa: BLE001 - a crash, reported
            box.append(exc)

    worker = threading.Thread(target=target, name="soak-harness", daemon=True)
    worker.start()
    worker.join(harness_s)
    if worker.is_alive():
        return None, None, True
    result = box[0]
    if isinstance(result, BaseException):
        return None, f"{type(result).__name__}: {result}"[:300], False
    return result, None, False


def jobs_for(network: str, runs: int, real_deadline_s: float) -> list[tuple[str, dict[str, Any]]]:
    """The runs of one network: every flow in turn, varied seeds (and impairments on the sim)."""
    import rtclab

    flows = list(rtclab.FLOWS)
    jobs = []
    for i in range(runs):
        flow = flows[i % len(flows)]
        if network == "sim":
            params = {"seed": i, **SIM_VARIANTS[(i // len(flows)) % len(SIM_VARIANTS)]}
        else:
            params = {"network": "real", "seed": i, "answer_delay_ms": 100, "deadline_s": real_deadline_s}
        jobs.append((flow, params))
    return jobs


def soak(network: str, runs: int, harness_s: float, real_deadline_s: float, progress: bool) -> dict[str, Any]:
    """Soak one network; returns its section of the report."""
    import rtclab

    for _ in range(2):  # warm-up: imports, aiortc's executor thread, codec tables
        bounded_run("basic", harness_s, {"network": network})
    base = snapshot()
    rss = {"start": base["rss_mb"]}
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    jobs = jobs_for(network, runs, real_deadline_s)
    for i, (flow, params) in enumerate(jobs):
        t = time.perf_counter()
        r, crash, hung = bounded_run(flow, harness_s, params)
        now = snapshot()
        row = {
            "i": i, "flow": flow, "params": {k: v for k, v in params.items() if k != "network"},
            "outcome": r.outcome if r is not None else ("hang" if hung else "crash"),
            "reason": r.reason if r is not None else (crash or f"harness timeout {harness_s} s"),
            "hang": hung, "crash": crash is not None, "wall_s": round(time.perf_counter() - t, 3),
            "fds": now["fds"] - base["fds"], "threads": now["threads"] - base["threads"], "tasks": now["tasks"] - base["tasks"],
            "rtclab_threads": now["rtclab_threads"], "patched": now["patched"], "rss_mb": now["rss_mb"],
        }
        row["leak"] = bool(row["fds"] > 0 or row["threads"] > 1 or row["tasks"] > 0 or row["rtclab_threads"] or row["patched"])
        rows.append(row)
        if i == len(jobs) // 2 - 1:
            rss["middle"] = now["rss_mb"]
        if progress and (i + 1) % 20 == 0:
            print(f"  {network}: {i + 1}/{len(jobs)} runs, RSS {now['rss_mb']} MiB", file=sys.stderr, flush=True)
    rss["end"] = rows[-1]["rss_mb"] if rows else rss["start"]
    rss.setdefault("middle", rss["end"])
    rss["growth"] = round(rss["end"] - rss["start"], 1)
    rss["growth_second_half"] = round(rss["end"] - rss["middle"], 1)
    per_flow: dict[str, Any] = {}
    for flow in rtclab.FLOWS:
        fr = [r for r in rows if r["flow"] == flow]
        if not fr:
            continue
        per_flow[flow] = {
            "runs": len(fr),
            "hangs": sum(r["hang"] for r in fr),
            "crashes": sum(r["crash"] for r in fr),
            "outcomes": dict(Counter(r["outcome"] for r in fr)),
            "max_fds_over_baseline": max(r["fds"] for r in fr),
            "max_threads_over_baseline": max(r["threads"] for r in fr),
            "max_tasks_over_baseline": max(r["tasks"] for r in fr),
            "leaky_runs": sum(r["leak"] for r in fr),
        }
    return {
        "runs": len(rows),
        "hangs": sum(r["hang"] for r in rows),
        "crashes": sum(r["crash"] for r in rows),
        "leaky_runs": sum(r["leak"] for r in rows),
        "wall_s": round(time.perf_counter() - t0, 1),
        "baseline": base,
        "rss_mb": rss,
        "flows": per_flow,
        "crash_reasons": sorted({r["reason"] for r in rows if r["crash"]}),
        "runs_detail": rows,
    }


def summary(report: dict[str, Any]) -> str:
    """A plain-text table of the report."""
    lines = [f"rtclab soak ({report['command']}) on {report['machine']}"]
    for network, res in report["networks"].items():
        rss = res["rss_mb"]
        lines.append("")
        lines.append(
            f"{network}: {res['runs']} runs in {res['wall_s']} s — hangs {res['hangs']}, crashes {res['crashes']}, "
            f"runs above baseline {res['leaky_runs']}; RSS {rss['start']} -> {rss['middle']} -> {rss['end']} MiB "
            f"(growth {rss['growth']:+}, second half {rss['growth_second_half']:+})"
        )
        lines.append(f"  {'flow':<20} {'runs':>4} {'hangs':>5} {'crash':>5} {'+fds':>4} {'+thr':>4} {'+tasks':>6} {'leaky':>5}  outcomes")
        for flow, f in res["flows"].items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(f["outcomes"].items()))
            lines.append(
                f"  {flow:<20} {f['runs']:>4} {f['hangs']:>5} {f['crashes']:>5} {f['max_fds_over_baseline']:>4} "
                f"{f['max_threads_over_baseline']:>4} {f['max_tasks_over_baseline']:>6} {f['leaky_runs']:>5}  {outcomes}"
            )
        for reason in res["crash_reasons"]:
            lines.append(f"  crash: {reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per network (default 200)")
    parser.add_argument("--networks", default="sim,real", help="comma-separated: sim, real (default both)")
    parser.add_argument("--harness-s", type=float, default=120.0, help="wall seconds before a run counts as a hang")
    parser.add_argument("--real-deadline-s", type=float, default=3.0,
                        help="deadline of real-network runs (flows that never connect end there)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    if args.runs < 1 or any(n not in ("sim", "real") for n in networks):
        parser.error("--runs must be >= 1 and --networks a list of sim, real")
    sys.path.insert(0, str(ROOT))
    report: dict[str, Any] = {
        "machine": f"{platform.platform()} python {platform.python_version()} cpus {os.cpu_count()}",
        "command": "python -m benchmarks.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
        "params": {"runs": args.runs, "harness_s": args.harness_s, "real_deadline_s": args.real_deadline_s},
        "networks": {},
    }
    for network in networks:
        report["networks"][network] = soak(network, args.runs, args.harness_s, args.real_deadline_s, not args.quiet)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(summary(report))
    print(f"\nwritten: {args.out}")
    bad = sum(res["hangs"] + res["crashes"] for res in report["networks"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
