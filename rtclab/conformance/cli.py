"""Command line: ``python -m rtclab.conformance {list,record,table,check}``.

``record``  runs every scenario (``--only`` some) and each course flow with a browser side in
            headless Chromium, inside a loopback-only network namespace, and stores the frames
            and essentials in ``data/chromium/``.
``table``   runs every scenario afresh in Chromium and on Peer (real network inside the same
            namespace; simulated network here), prints the "rtclab vs a browser" table, and writes
            it to ``data/chromium/conformance-table.md`` and the README (between the markers).
            Chromium's column is the stored reference; a fresh run that differs from it in its
            essentials is reported (then ``record`` again).
``check``   exits 1 unless the README's table equals the one generated from the stored Chromium
            and real-network results and a fresh simulated run (no browser needed).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import results, runner, table
from .core import Scenario, compare

README = Path(__file__).resolve().parent.parent.parent / "README.md"
CHILD_TIMEOUT_S = 600.0


def _child(args: list[str]) -> None:
    proc = runner.run_isolated(["_run", "--loopback", *args], timeout=CHILD_TIMEOUT_S)
    if proc.returncode != 0:
        raise SystemExit(f"the Chromium run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def _load_frames(folder: Path) -> dict[str, Any]:
    from ..trace import load

    return {p.stem.replace("__", "/"): load(p) for p in sorted(folder.glob("*.csv"))} if folder.exists() else {}


def _essentials(items: list[Scenario], frames: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {sc.name: json.loads(json.dumps(sc.essentials(frames[sc.name]), default=str)) for sc in items if sc.name in frames}


def sim_essentials(items: list[Scenario]) -> dict[str, dict[str, Any]]:
    """Every scenario's essentials on Peer in the simulated network (fresh, deterministic)."""
    return _essentials(items, {sc.name: runner.run_sim(sc) for sc in items})


def _need_browser() -> None:
    from ..browser import availability

    reason = availability()
    if reason:
        raise SystemExit(f"cannot run Chromium here: {reason}")


def cmd_record(ns: argparse.Namespace) -> int:
    _need_browser()
    items = runner.selected(ns.only)
    with tempfile.TemporaryDirectory(prefix="rtclab-conformance-") as tmp:
        _child(["--chromium", *(["--flows"] if ns.flows and not ns.only else []), "--out", tmp, *sum([["--only", n] for n in ns.only or []], [])])
        meta = json.loads((Path(tmp) / "meta.json").read_text())
        frames = _load_frames(Path(tmp) / "chromium")
        ess = _essentials(items, frames)
        written = results.save_chromium(frames, ess, {sc.name: sc.title for sc in items}, {"chromium": meta["version"], "user_agent": meta.get("user_agent", "")})
        flows = Path(tmp) / "flows"
        if flows.exists():
            from ..trace import load, save

            for p in sorted(flows.glob("*.csv")):
                frame = load(p)
                flow_meta = {**frame.attrs.get("meta", {}), "chromium": meta["version"]}
                written.append(save(frame, results.chromium_dir() / "flows" / p.name, meta=flow_meta))
    for p in written:
        print(p)
    return 0


def cmd_table(ns: argparse.Namespace) -> int:
    items = runner.selected(None)
    stored = results.load_chromium()
    if ns.stored:
        chromium = {k: v["essentials"] for k, v in stored["scenarios"].items()}
        real = results.load_real()["scenarios"]
        version = stored.get("chromium", "")
    else:
        _need_browser()
        with tempfile.TemporaryDirectory(prefix="rtclab-conformance-") as tmp:
            t0 = time.perf_counter()
            _child(["--chromium", "--real", "--out", tmp])
            meta = json.loads((Path(tmp) / "meta.json").read_text())
            chromium = _essentials(items, _load_frames(Path(tmp) / "chromium"))
            real = _essentials(items, _load_frames(Path(tmp) / "real"))
            print(f"Chromium and real-network runs: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        version = meta["version"]
        stale = []
        for name, ess in chromium.items():  # the table shows the stored reference, checked against this run
            ref = stored["scenarios"].get(name, {}).get("essentials")
            if ref is not None:
                stale += [name] if compare(ref, ess) else []
                chromium[name] = ref
        for name in stale:
            print(f"warning: {name}: this Chromium run differs from data/chromium: run `record`", file=sys.stderr)
        if stored.get("chromium") and version != stored["chromium"]:
            print(f"warning: data/chromium was made with Chromium {stored['chromium']}; this is {version}", file=sys.stderr)
        version = stored.get("chromium") or version
        results.save_real(real, {"chromium": version})
    t0 = time.perf_counter()
    sim = sim_essentials(items)
    print(f"simulated runs: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    text = table.render(items, chromium, sim, real, chromium_version=version)
    print(text)
    (results.chromium_dir() / "conformance-table.md").write_text(text)
    if ns.readme:
        table.update_readme(README, text)
    return 0


def expected_table() -> str:
    """The table from the stored Chromium and real-network results and a fresh simulated run."""
    items = runner.selected(None)
    stored = results.load_chromium()
    chromium = {k: v["essentials"] for k, v in stored["scenarios"].items()}
    return table.render(items, chromium, sim_essentials(items), results.load_real()["scenarios"], chromium_version=stored.get("chromium", ""))


def cmd_check(ns: argparse.Namespace) -> int:
    want = expected_table()
    have = table.readme_section(README)
    if have == want:
        print("README table is up to date")
        return 0
    diff = difflib.unified_diff((have or "").splitlines(), want.splitlines(), "README.md", "generated", lineterm="")
    print("\n".join(diff))
    return 1


def cmd_list(ns: argparse.Namespace) -> int:
    for sc in runner.selected(None):
        extra = f"  [timer, {sc.timeout_s:g} s]" if sc.timeout_s > runner.TIMER_S else ""
        print(f"{sc.name}{extra}\n    {sc.title}")
    return 0


def cmd_run_child(ns: argparse.Namespace) -> int:
    """Inside the namespace: Chromium (and Peer on the real network) side by side; frames to --out."""
    from ..browser import allow_loopback_gathering
    from ..trace import save

    if ns.loopback:
        allow_loopback_gathering()
    out = Path(ns.out)
    items = runner.selected(ns.only)

    async def main() -> dict[str, Any]:
        jobs: dict[str, Any] = {}
        if ns.chromium:
            jobs["chromium"] = runner.run_chromium(items)
        if ns.real:
            jobs["real"] = runner.run_real(items)
        done = dict(zip(jobs, await asyncio.gather(*jobs.values())))
        if ns.flows:
            done["flows"] = await _flows()
        return done

    done = asyncio.run(main())
    meta: dict[str, Any] = {}
    if "chromium" in done:
        meta = {"version": done["chromium"].get("version", ""), "user_agent": done["chromium"].get("user_agent", "")}
        for name, frame in done["chromium"]["frames"].items():
            save(frame, out / "chromium" / f"{name.replace('/', '__')}.csv")
    for name, frame in done.get("real", {}).items():
        save(frame, out / "real" / f"{name.replace('/', '__')}.csv")
    for name, frame in done.get("flows", {}).items():
        save(frame, out / "flows" / f"{name}.csv", meta=frame.attrs.get("meta"))
    (out / "meta.json").write_text(json.dumps(meta))
    return 0


async def _flows() -> dict[str, Any]:
    from ..browser import arun_browser

    frames = {}
    for flow, side in results.FLOW_RUNS:
        run = await arun_browser(flow, browser_side=side, seed=0)
        frame = run.events
        frame.attrs["meta"] = {**(frame.attrs.get("meta") or {}), "outcome": run.outcome, "params": {k: v for k, v in run.params.items() if isinstance(v, (int, float, str, bool)) or v is None}}
        frames[f"{flow}-browser-{side}"] = frame
    return frames


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rtclab.conformance``."""
    ap = argparse.ArgumentParser(prog="python -m rtclab.conformance", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the scenarios")
    r = sub.add_parser("record", help="record the Chromium reference traces into data/chromium/")
    r.add_argument("--only", action="append", help="a scenario name (repeatable); flows are then skipped")
    r.add_argument("--no-flows", dest="flows", action="store_false", help="skip the course flows")
    t = sub.add_parser("table", help="run everything afresh and print/write the rtclab vs a browser table")
    t.add_argument("--stored", action="store_true", help="use the stored Chromium and real-network results (no browser)")
    t.add_argument("--no-readme", dest="readme", action="store_false", help="do not update README.md")
    sub.add_parser("check", help="exit 1 unless README.md holds the generated table")
    c = sub.add_parser("_run", help=argparse.SUPPRESS)
    c.add_argument("--chromium", action="store_true")
    c.add_argument("--real", action="store_true")
    c.add_argument("--flows", action="store_true")
    c.add_argument("--only", action="append")
    c.add_argument("--loopback", action="store_true")
    c.add_argument("--out", required=True)
    ns = ap.parse_args(argv)
    try:
        return {"list": cmd_list, "record": cmd_record, "table": cmd_table, "check": cmd_check, "_run": cmd_run_child}[ns.cmd](ns)
    except runner.UnknownScenario as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
