"""Command line: ``python -m rtclab {demo,run,sweep,flows,gallery,traces,serve,diagnose,plot}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

PARAM_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--network", "network", str, "sim (deterministic, simulated) or real (UDP on this machine)"),
    ("--topology", "topology", str, "sim topology: lan or nat"),
    ("--nat", "nat", str, "NAT type behind each host: full-cone, restricted, port-restricted, symmetric"),
    ("--latency", "signaling_latency_ms", float, "signaling one-way latency in ms"),
    ("--jitter", "jitter_ms", float, "signaling jitter in ms"),
    ("--reorder", "reorder", float, "probability a signaling message is held back (may be overtaken)"),
    ("--loss", "loss", float, "signaling message loss probability"),
    ("--duplicate", "duplicate", float, "signaling message duplication probability"),
    ("--answer-delay", "answer_delay_ms", float, "the user's think time before clicking Answer, ms"),
    ("--candidate-interval", "candidate_interval_ms", float, "pause between emitted candidates, ms"),
    ("--link-latency", "link_latency_ms", float, "sim: one-way network latency per link, ms"),
    ("--link-loss", "link_loss", float, "sim: packet loss probability per link"),
    ("--deadline", "deadline_s", float, "end the run after this many (virtual) seconds"),
    ("--seed", "seed", int, "random seed"),
]


def _add_params(p: argparse.ArgumentParser) -> None:
    for flag, dest, typ, help_ in PARAM_FLAGS:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=help_)
    p.add_argument("--turn", dest="turn", action="store_true", default=None, help="sim: offer the TURN server too")
    p.add_argument("--no-stun", dest="stun", action="store_false", default=None, help="sim: no STUN server")
    p.add_argument("--packets", dest="record_packets", action="store_true", default=None, help="sim: record net rows")


def _params(ns: argparse.Namespace) -> dict[str, Any]:
    keys = [d for _f, d, _t, _h in PARAM_FLAGS] + ["turn", "stun", "record_packets"]
    return {k: getattr(ns, k) for k in keys if getattr(ns, k, None) is not None}


def _print_run(r: Any, *, all_rows: bool = False) -> None:
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 48)
    pd.set_option("display.max_rows", 500)
    table = r.events if all_rows else r.table()
    print(table.to_string(index=False))
    print()
    print(f"flow: {r.flow}   network: {r.params['network']}   seed: {r.params['seed']}")
    ev = r.events
    for side in ("caller", "callee"):
        for name in ("signalingState", "iceGatheringState", "iceConnectionState", "connectionState"):
            rows = ev[(ev["actor"] == side) & (ev["kind"] == "state") & (ev["name"] == name)]
            seq = ([rows["prev"].iloc[0]] if len(rows) else []) + list(rows["value"])
            print(f"  {side:6s} {name:19s} {' -> '.join(seq) if seq else '(no peer connection)'}")
    cand = ev[(ev["kind"] == "ice") & (ev["name"] == "candidate") & ~ev["ref"].str.endswith(":end")]
    sig = ev[(ev["kind"] == "signal") & (ev["name"] == "new-ice-candidate") & ~ev["ref"].str.endswith(":end")]
    for src, dst in (("caller", "callee"), ("callee", "caller")):
        mine = cand["ref"].str.startswith(src + ":")
        n_sent = sig[(sig["actor"] == src) & (sig["value"] == "sent")]["ref"].nunique()
        fates = {v: cand[mine & (cand["actor"] == dst) & (cand["value"] == v)]["ref"].nunique() for v in ("added", "lost", "rejected")}
        gathered = cand[mine & (cand["value"] == "gathered")]["ref"].nunique()
        print(f"  candidates {src} -> {dst}: gathered {gathered}, sent {n_sent}, added {fates['added']}, "
              f"lost {fates['lost']}, rejected {fates['rejected']}")
    m = r.metrics
    for key in ("t_connected_ms", "t_first_frame_caller_ms", "t_first_frame_callee_ms", "answer_to_media_ms", "gathering_ms"):
        print(f"  {key}: {m[key]}")
    print(f"  selected pair: {m['selected_pair'] or '-'}   errors: {m['errors']}")
    print(f"outcome: {r.outcome} ({r.reason})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m rtclab`` (and the ``rtclab`` script)."""
    from . import __version__
    from .flows import FLOWS

    parser = argparse.ArgumentParser(prog="python -m rtclab", description="rtclab: see WebRTC negotiation happen.")
    parser.add_argument("--version", action="version", version=f"rtclab {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    demo = sub.add_parser("demo", help="one paired call (basic): event table, summary, plot")
    _add_params(demo)
    demo.add_argument("--plot", default="rtclab-demo.png", help="where to write the summary plot ('' for none)")

    runp = sub.add_parser("run", help="run one flow and print its outcome, metrics and events")
    runp.add_argument("flow", help="flow name (see 'flows')")
    _add_params(runp)
    runp.add_argument("--save", default=None, help="write the events to this CSV file")
    runp.add_argument("--plot", default=None, help="write the summary plot to this PNG file")
    runp.add_argument("--all", action="store_true", help="print every row (pair checks too)")

    sw = sub.add_parser("sweep", help="run many trials over a grid; write one row per trial")
    sw.add_argument("flow", nargs="+", help="flow name(s)")
    sw.add_argument("--trials", type=int, default=10)
    sw.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="a parameter and its values (repeatable)")
    sw.add_argument("--workers", type=int, default=None)
    sw.add_argument("--out", default=None, help="CSV file for the rows")
    _add_params(sw)

    sub.add_parser("flows", help="list the flows")

    gal = sub.add_parser("gallery", help="write every plot of every flow (lan and nat) as PNG")
    gal.add_argument("--out", default="gallery")

    tr = sub.add_parser("traces", help="regenerate the reference traces in data/traces")
    tr.add_argument("--out", default=None)

    srv = sub.add_parser("serve", help="MDN-protocol signaling server (WebSocket, subprotocol json, port 6503) with an aiortc bot")
    from .server import add_arguments as _serve_arguments

    _serve_arguments(srv)
    from . import cli_files

    cli_files.add_parsers(sub)

    ns = parser.parse_args(argv)
    if ns.cmd is None:
        parser.print_help()
        return 2
    try:
        return _dispatch(ns, parser, FLOWS)
    except (KeyError, TypeError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        parser.exit(2, f"rtclab: error: {msg}\n")
    return 0


def _dispatch(ns: argparse.Namespace, parser: argparse.ArgumentParser, flows: dict[str, Any]) -> int:
    from . import cli_files
    from .lab import run

    status = cli_files.dispatch(ns)
    if status is not None:
        return status
    if ns.cmd == "flows":
        for name, spec in flows.items():
            print(f"{name:20s} {spec.summary}")
        return 0
    if ns.cmd == "demo":
        r = run("basic", **_params(ns))
        _print_run(r)
        if ns.plot:
            _save_plot(r, ns.plot)
        return 0 if r.outcome == "connected" else 1
    if ns.cmd == "run":
        r = run(ns.flow, **_params(ns))
        _print_run(r, all_rows=ns.all)
        if ns.save:
            print(f"events written to {r.save(ns.save)}")
        if ns.plot:
            _save_plot(r, ns.plot)
        return 0
    if ns.cmd == "sweep":
        from .sweeps import sweep

        grid = {}
        for item in ns.grid:
            if "=" not in item:
                raise ValueError(f"--grid wants NAME=V1,V2, got {item!r}")
            name, values = item.split("=", 1)
            grid[name] = [_auto(v) for v in values.split(",")]
        df = sweep(ns.flow, trials=ns.trials, grid=grid, workers=ns.workers, **_params(ns))
        keys = ["flow", *grid]
        summary = df.groupby(keys)["outcome"].value_counts().unstack(fill_value=0)
        print(summary.to_string())
        if ns.out:
            Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(ns.out, index=False)
            print(f"{len(df)} rows written to {ns.out}")
        return 0
    if ns.cmd == "gallery":
        from .plots import gallery

        runs = {}
        for name in flows:
            for topo in ("lan", "nat"):
                runs[f"{name}-{topo}"] = run(name, topology=topo, answer_delay_ms=1000)
        paths = gallery(ns.out, runs)
        print(f"{len(paths)} images written to {ns.out}/")
        return 0
    if ns.cmd == "traces":
        from .data import regenerate_traces

        for path in regenerate_traces(ns.out):
            print(path)
        return 0
    if ns.cmd == "serve":
        from .server import run_from_args

        return run_from_args(ns)
    parser.print_help()
    return 2


def _auto(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _save_plot(r: Any, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig = r.plot()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(f"plot written to {path}")


if __name__ == "__main__":
    sys.exit(main())
