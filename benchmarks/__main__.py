"""rtclab benchmarks: ``python -m benchmarks [--quick] [--out DIR] [--only NAME ...]``.

Measures, side by side in one process where figures are compared, and writes
``DIR/results.json`` plus ``DIR/summary.md``, with the load average (1, 5 and
15 min) before and after every benchmark and the whole run, and a table of the
performance goals of issue #16 against the figures measured:

* ``real_overhead``: on this machine's UDP sockets, interleaved: a bare aiortc
  pair with every candidate in the descriptions (as aiortc's examples do) and
  ``rtclab.run("basic", network="real")``; in the rtclab runs, the
  instrumentation cost (wall time spent recording rows, inside
  ``Trace.record``) is reported apart from aioice's check scheduling (read
  from the pair-check rows: trickled candidates wait for aioice's next 20 ms
  check tick, and nomination comes a tick after the first success);
* ``sim``: wall time of a 60 s virtual video call, of an ICE failure (all packets
  dropped) in virtual and wall time, the short-trial median and throughput on
  one process, and the same short call on the real network;
* ``sweep``: a 200-trial ``rtclab.sweep`` on 2 worker processes, pool warm
  (kept from a first sweep, as between two sweeps in a notebook);
* ``flows``: per flow and topology, median connect, first frame and
  answer-to-media over seeded sim trials;
* ``answer``: median ``answer_to_media_ms`` of ``counteroffer`` vs
  ``answer-on-click`` (on ``lan``, where the latter connects) at signaling
  latencies 10, 50 and 200 ms, and ``vanilla`` vs trickle connect times;
* ``chaos``: success rate of every flow under heavy signaling impairment and
  media-path loss;
* ``course``: the whole course under ``pytest --nbval`` (the configured
  ``-n 3`` workers), and apart the eleven notebooks (00-10) the course had
  when issue #16 set its goal;
* ``server``: ``rtclab serve`` holding 200 users, then a flood from a client
  that never reads and a slow reader: normal users' delivery latency (quiet,
  storm, after), user-list messages per join, server RSS
  (:mod:`benchmarks.server_load`);
* ``suite``: the whole test suite, the README's command (``python -m pytest``).

What each #16 change saved against the code before it, measured interleaved in
one process, is ``python -m benchmarks.changes`` (``changes.json``).

No figure here is asserted by a test: timing belongs in this report.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server_load import bench_server  # noqa: E402
from benchmarks.workloads import short_trial  # noqa: E402


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return round(statistics.median(xs), 2) if xs else float("nan")


# -- real network: bare aiortc vs rtclab -----------------------------------------------


async def _bare_pair() -> tuple[float, float]:
    """A bare aiortc pair (iceServers=[], non-trickle), the way aiortc's examples do it."""
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

    from rtclab.media import Camera

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected: dict[str, float] = {}
    first: dict[str, float] = {}
    done = asyncio.Event()

    def on_state(name: str, pc: RTCPeerConnection) -> None:
        if pc.connectionState == "connected":
            connected.setdefault(name, loop.time() - t0)

    async def consume(name: str, track: Any) -> None:
        try:
            await track.recv()
            first[name] = loop.time() - t0
            if len(first) == 2:
                done.set()
            while True:
                await track.recv()
        except Exception:
            pass

    tasks = []
    for name, pc in (("a", a), ("b", b)):
        pc.on("connectionstatechange", lambda n=name, p=pc: on_state(n, p))
        pc.on("track", lambda track, n=name: tasks.append(asyncio.ensure_future(consume(n, track))))
    cams = [Camera(), Camera()]
    try:
        a.addTrack(cams[0])
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        b.addTrack(cams[1])
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        for c in cams:
            c.stop()
        await a.close()
        await b.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return max(connected.values()) * 1000, max(first.values()) * 1000


def _check_waits(events: Any) -> tuple[float, float]:
    """aioice's scheduling in one rtclab frame, from its pair-check rows.

    aioice checks one pair per 20 ms tick: candidates that arrive while its
    check loop sleeps wait for the next tick (last candidate added -> first
    check sent), and the pair is nominated on a later tick (first check
    succeeded -> ICE completed).
    """
    ice = events[events["kind"] == "ice"]
    added = ice.loc[(ice["name"] == "candidate") & (ice["value"] == "added"), "t_ms"]
    checks = ice.loc[(ice["name"] == "pair") & (ice["value"] == "in-progress"), "t_ms"]
    ok = ice.loc[(ice["name"] == "pair") & (ice["value"] == "succeeded"), "t_ms"]
    done = events.loc[(events["name"] == "iceConnectionState") & (events["value"] == "completed"), "t_ms"]
    if not len(checks) or not len(ok) or not len(done):
        return float("nan"), float("nan")
    before = added[added <= checks.min()]
    first_wait = float(checks.min() - before.max()) if len(before) else float("nan")
    return first_wait, float(done.min() - ok.min())


def bench_real_overhead(n: int) -> dict[str, Any]:
    import rtclab
    from rtclab.trace import Trace

    record = Trace.record
    in_record = [0.0]

    def timed_record(self: Trace, *args: Any, **kwargs: Any) -> None:
        t = time.perf_counter()
        try:
            record(self, *args, **kwargs)
        finally:
            in_record[0] += time.perf_counter() - t

    bare_c, bare_f, lab_c, lab_f, recording, first_wait, nominate_wait = [], [], [], [], [], [], []
    for i in range(n):  # interleaved (alternating who goes first), so both see the same machine load
        for which in (("bare", "rtclab"), ("rtclab", "bare"))[i % 2]:
            if which == "rtclab":
                in_record[0] = 0.0
                Trace.record = timed_record  # type: ignore[method-assign]
                try:
                    r = rtclab.run("basic", network="real", signaling_latency_ms=0, candidate_interval_ms=0)
                finally:
                    Trace.record = record  # type: ignore[method-assign]
                lab_c.append(float(r.metrics["t_connected_ms"]))
                lab_f.append(float(r.metrics["t_first_frame_ms"]))
                recording.append(in_record[0] * 1000)
                w1, w2 = _check_waits(r.events)
                first_wait.append(w1)
                nominate_wait.append(w2)
            else:
                c, f = asyncio.run(_bare_pair())
                bare_c.append(c)
                bare_f.append(f)
    out = {
        "runs": n,
        "bare_connect_ms": _median(bare_c),
        "bare_first_frame_ms": _median(bare_f),
        "rtclab_connect_ms": _median(lab_c),
        "rtclab_first_frame_ms": _median(lab_f),
        "recording_ms_per_run": _median(recording),
        "aioice_wait_for_first_check_ms": _median(first_wait),
        "aioice_wait_for_nomination_ms": _median(nominate_wait),
    }
    out["overhead_ratio_connect"] = round(out["rtclab_connect_ms"] / out["bare_connect_ms"], 2)
    out["overhead_ratio_first_frame"] = round(out["rtclab_first_frame_ms"] / out["bare_first_frame_ms"], 2)
    out["note"] = ("recording = wall time inside Trace.record per rtclab run (the instrumentation proper); "
                   "aioice_wait_for_first_check = last trickled candidate added -> first pair check (aioice checks "
                   "on a 20 ms tick; a bare pair has every candidate before its check loop starts); "
                   "aioice_wait_for_nomination = first check succeeded -> ICE completed; "
                   "signaling latency and candidate interval 0")
    return out


# -- simulated network ----------------------------------------------------------------------------


def bench_sim(n: int) -> dict[str, Any]:
    import rtclab

    out: dict[str, Any] = {}
    for _ in range(3):
        short_trial(0)  # warm imports and caches
    t = time.perf_counter()
    long = rtclab.run("basic", hold_s=60.0, deadline_s=120)
    out["call_60s_virtual_s"] = round(float(long.events["t_ms"].max()) / 1000, 1)
    out["call_60s_wall_s"] = round(time.perf_counter() - t, 2)
    out["call_60s_outcome"] = long.outcome
    out["call_60s_video"] = "x".join(map(str, long.params["sim_video"]))
    fails = []
    for _ in range(max(3, n // 4)):
        t = time.perf_counter()
        r = rtclab.run("basic", link_loss=1.0, deadline_s=120)
        fails.append(time.perf_counter() - t)
    # (Chromium's iceConnectionState goes to 'disconnected' when checks fail; connectionState says 'failed')
    ice = r.events[(r.events["name"] == "connectionState") & (r.events["value"] == "failed")]
    out["ice_failure_virtual_s"] = round(float(ice["t_ms"].min()) / 1000, 2) if len(ice) else None
    out["ice_failure_wall_ms_median"] = round(statistics.median(fails) * 1000, 1)
    out["ice_failure_outcome"] = r.outcome
    walls = [short_trial(s) for s in range(n)]
    out["short_trial_wall_ms_median"] = round(statistics.median(walls) * 1000, 1)
    out["trials_per_s_1proc"] = round(n / sum(walls), 2)
    reals = []
    for _ in range(max(3, n // 4)):
        t = time.perf_counter()
        rtclab.run("basic", network="real")
        reals.append(time.perf_counter() - t)
    out["same_call_real_wall_ms_median"] = round(statistics.median(reals) * 1000, 1)
    return out


def bench_sweep(trials: int) -> dict[str, Any]:
    """A sweep on 2 worker processes whose pool is warm (kept from a first sweep)."""
    import rtclab
    from rtclab import sweeps

    sweeps.shutdown()
    t = time.perf_counter()
    rtclab.sweep("basic", trials=8, workers=2, progress=False)  # starts the pool; workers import once
    cold = time.perf_counter() - t
    t = time.perf_counter()
    df = rtclab.sweep("basic", trials=trials, workers=2, progress=False, seed=1)
    wall = time.perf_counter() - t
    sweeps.shutdown()
    return {
        "trials": trials,
        "workers": 2,
        "first_sweep_of_8_s": round(cold, 2),
        "warm_wall_s": round(wall, 2),
        "warm_trials_per_s": round(trials / wall, 1),
        "outcomes": df["outcome"].value_counts().to_dict(),
    }


def bench_flows(n: int) -> dict[str, Any]:
    import rtclab

    rows = {}
    for flow in rtclab.FLOWS:
        for topo in ("lan", "nat"):
            df = rtclab.sweep(flow, trials=n, topology=topo, progress=False, workers=1, seed=11)
            ok = df[df["outcome"] == "connected"]
            rows[f"{flow}/{topo}"] = {
                "success": f"{len(ok)}/{len(df)}",
                "outcomes": df["outcome"].value_counts().to_dict(),
                "connect_ms": _median(list(ok["t_connected_ms"].astype(float))),
                "first_frame_ms": _median(list(ok["t_first_frame_ms"].astype(float))),
                "answer_to_media_ms": _median(list(ok["answer_to_media_ms"].astype(float))),
            }
    return rows


def bench_answer(n: int) -> dict[str, Any]:
    import rtclab

    out: dict[str, Any] = {}
    df = rtclab.sweep(["counteroffer", "answer-on-click"], trials=n, grid={"signaling_latency_ms": [10, 50, 200]},
                      progress=False, seed=5, jitter_ms=0)
    for lat in (10, 50, 200):
        cell = {}
        for flow in ("counteroffer", "answer-on-click"):
            sub = df[(df["flow"] == flow) & (df["signaling_latency_ms"] == lat) & (df["outcome"] == "connected")]
            cell[flow] = _median(list(sub["answer_to_media_ms"].astype(float)))
            cell[f"{flow}_connected"] = f"{len(sub)}/{n}"
        cell["ratio_naive_over_fix"] = round(cell["answer-on-click"] / cell["counteroffer"], 1) if cell["counteroffer"] else None
        out[f"latency_{lat}ms"] = cell
    dv = rtclab.sweep(["basic", "vanilla"], trials=max(3, n // 5), grid={"topology": ["lan", "nat"], "link_latency_ms": [5, 50]},
                      progress=False, seed=9)
    for topo in ("lan", "nat"):
        for link in (5, 50):
            for flow in ("basic", "vanilla"):
                sub = dv[(dv["flow"] == flow) & (dv["topology"] == topo) & (dv["link_latency_ms"] == link) & (dv["outcome"] == "connected")]
                out[f"connect_ms_{flow}_{topo}_link{link}ms"] = _median(list(sub["t_connected_ms"].astype(float)))
    return out


def bench_chaos(n: int) -> dict[str, Any]:
    import rtclab

    out: dict[str, Any] = {}
    impairments = {
        "signaling loss 30%": {"loss": 0.3},
        "signaling reorder 50% (jitter 40 ms)": {"reorder": 0.5, "jitter_ms": 40},
        "signaling duplicate 10%": {"duplicate": 0.1},
        "media-path loss 10%": {"link_loss": 0.1},
    }
    for label, params in impairments.items():
        df = rtclab.sweep(list(rtclab.FLOWS), trials=n, progress=False, seed=3, deadline_s=30, **params)
        out[label] = {f: f"{(g['outcome'] == 'connected').sum()}/{len(g)}" for f, g in df.groupby("flow")}
        out[label]["all_ended_with_outcome"] = bool(df["outcome"].notna().all())
    return out


def _pytest(*args: str) -> dict[str, Any]:
    # rtclab byte-compiled first, as .ci/run and a regular install leave it (with
    # PYTHONDONTWRITEBYTECODE set, each kernel would otherwise compile it again)
    compileall.compile_dir(str(ROOT / "rtclab"), quiet=1)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfEs", *args], cwd=ROOT, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    return {"wall_s": round(time.perf_counter() - t, 1), "exit_code": proc.returncode,
            "command": " ".join(["python -m pytest -q", *args]),
            "last_line": (lines or [""])[-1],
            # which tests did not pass, and why (pytest's short summary: -rfEs)
            "not_passed": [line for line in lines if line.startswith(("FAILED ", "ERROR ", "SKIPPED "))]}


#: the notebooks the course had when #16 set its goal (00-10); 11-14 came later
FIRST_ELEVEN = [f"notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if p.name[:2] <= "10"]


def bench_course() -> dict[str, Any]:
    out = _pytest("notebooks")
    first = _pytest(*FIRST_ELEVEN)
    out["first_eleven_wall_s"] = first["wall_s"]
    out["first_eleven_last_line"] = first["last_line"]
    return out


def bench_suite() -> dict[str, Any]:
    return _pytest()


BENCHES = {
    "real_overhead": lambda q: bench_real_overhead(6 if q else 21),
    "sim": lambda q: bench_sim(8 if q else 40),
    "sweep": lambda q: bench_sweep(40 if q else 200),
    "flows": lambda q: bench_flows(3 if q else 10),
    "answer": lambda q: bench_answer(6 if q else 50),
    "chaos": lambda q: bench_chaos(3 if q else 20),
    "course": lambda q: bench_course(),
    "server": lambda q: bench_server(50 if q else 200, 3.0 if q else 5.0),
    "suite": lambda q: bench_suite(),
}

#: issue #16's goals: (benchmark, figure, comparison, bound, unit)
GOALS = [
    ("sim", "short_trial_wall_ms_median", "<=", 20, "ms"),
    ("sim", "call_60s_wall_s", "<", 2, "s"),
    ("sim", "ice_failure_wall_ms_median", "<", 25, "ms"),
    ("sweep", "warm_trials_per_s", ">=", 80, "trials/s"),
    ("course", "wall_s", "<", 30, "s"),
    ("suite", "wall_s", "<", 180, "s"),
]


def _goals(benchmarks: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for bench, figure, op, bound, unit in GOALS:
        value = benchmarks.get(bench, {}).get(figure)
        met = None if value is None else (value <= bound if op == "<=" else value < bound if op == "<" else value >= bound)
        rows.append({"figure": f"{bench}.{figure}", "goal": f"{op} {bound} {unit}", "measured": value, "met": met})
    return rows


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _markdown(results: dict[str, Any]) -> str:
    lines = ["# rtclab benchmark results", "", f"machine: {results['machine']}", f"command: `{results['command']}`",
             f"load average (1/5/15 min): {results.get('load_average_before')} before, {results.get('load_average_after')} after",
             f"wall time of the whole run: {results.get('wall_s')} s", ""]
    if results.get("goals"):
        lines += ["## goals (#16)", "", "| figure | goal | measured | met |", "|---|---|---|---|"]
        lines += [f"| {g['figure']} | {g['goal']} | {g['measured']} | {g['met']} |" for g in results["goals"]]
        lines.append("")
    for name, res in results["benchmarks"].items():
        lines.append(f"## {name}")
        lines.append("")
        if isinstance(res, dict) and "load_average_before_after" in res:
            res = dict(res)
            before, after = res.pop("load_average_before_after")
            lines += [f"load average: {before} before, {after} after", ""]
        if isinstance(res, dict) and all(isinstance(v, dict) for v in res.values()):
            keys = sorted({k for v in res.values() for k in v})
            lines.append("| case | " + " | ".join(keys) + " |")
            lines.append("|---" * (len(keys) + 1) + "|")
            for case, v in res.items():
                lines.append(f"| {case} | " + " | ".join(str(v.get(k, "")) for k in keys) + " |")
        elif isinstance(res, dict):
            lines.append("| figure | value |")
            lines.append("|---|---|")
            for k, v in res.items():
                lines.append(f"| {k} | {v} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=None)
    ns = parser.parse_args(argv)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    import aiortc

    previous: dict[str, Any] = {}
    command = "python -m benchmarks" + (" --quick" if ns.quick else "") + (f" --only {' '.join(ns.only)}" if ns.only else "")
    if ns.only and (out / "results.json").exists():  # update only the benchmarks asked for, keep the history
        before = json.loads((out / "results.json").read_text())
        previous = before.get("benchmarks", {})
        command = f"{before.get('command', '?')}; then {command}"
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, aiortc {aiortc.__version__}",
        "command": command,
        "benchmarks": dict(previous),
    }
    results["load_average_before"] = _load()
    start = time.perf_counter()
    for name in ns.only or list(BENCHES):
        t = time.perf_counter()
        print(f"[bench] {name} …", flush=True)
        load_before = _load()
        res = BENCHES[name](ns.quick)
        res["load_average_before_after"] = [load_before, _load()]
        results["benchmarks"][name] = res
        print(f"[bench] {name} done in {time.perf_counter() - t:.1f} s: {json.dumps(res)[:300]}", flush=True)
    results["load_average_after"] = _load()
    results["wall_s"] = round(time.perf_counter() - start, 1)
    results["goals"] = _goals(results["benchmarks"])
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "summary.md").write_text(_markdown(results))
    print(f"written {out / 'results.json'} and {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
