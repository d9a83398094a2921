"""Command line: ``python -m rtclab {demo,run,sweep,flows,check,gallery,traces,serve,diagnose,plot}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

#: Metrics the ``sweep`` summary shows (median per flow and grid point).
SUMMARY_METRICS = ("t_connected_ms", "t_first_frame_ms", "answer_to_media_ms", "gathering_ms")

_METAVAR = {"ms": "MS", "s": "SECONDS", "p": "P"}

EXIT_HELP = """exit status: 0 when the call's outcome is 'connected'; 1 when it is anything else
(failed, no-media, timeout, error) unless --allow-failure is given; 2 for bad arguments;
130 when interrupted (Ctrl-C)."""


def _param_type(name: str) -> Any:
    """An argparse ``type`` that parses and range-checks one :class:`RunParams` field."""
    from .params import RunParams

    spec = RunParams.param(name)

    def parse(text: str) -> Any:
        value: Any = text
        if spec.kind == "nat":
            value = tuple(text.split(",")) if "," in text else text
        elif spec.kind in ("int", "float"):
            try:
                value = int(text) if spec.kind == "int" else float(text)
            except ValueError:
                value = text
        try:
            return spec.check(name, value)
        except ValueError as exc:  # the message names the field and its range; show what was typed
            msg = str(exc).replace(f" or None ({spec.none})", "").rsplit(", got ", 1)[0]
            raise argparse.ArgumentTypeError(f"{msg}, got {text!r}") from None

    parse.__name__ = name
    return parse


def _bounded_int(name: str, low: int, high: int, meaning: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be an integer in [{low}, {high}] ({meaning}), got {text!r}")
        return value

    parse.__name__ = name
    return parse


def _add_params(p: argparse.ArgumentParser) -> None:
    """Add one option per :class:`~rtclab.params.RunParams` field (help and checks from its metadata)."""
    import dataclasses

    from .params import RunParams

    group = p.add_argument_group("run parameters (rtclab.params.RunParams)")
    for f in dataclasses.fields(RunParams):
        spec = f.metadata["param"]
        if spec.flag is None:
            continue
        default = spec.none if f.default is None else f.default
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "type": _param_type(f.name),
                                  "help": f"{spec.help}; {spec.range_text(with_none=False)} (default: {default})"}
        if spec.kind == "choice":
            kwargs["choices"] = spec.choices
            kwargs["help"] = f"{spec.help} (default: {default})"
        else:
            kwargs["metavar"] = _METAVAR.get(spec.unit, "N" if spec.kind == "int" else "TYPE")
        group.add_argument(spec.flag, **kwargs)
    group.add_argument("--turn", dest="turn", action="store_true", default=None, help=RunParams.param("turn").help)
    group.add_argument("--no-stun", dest="stun", action="store_false", default=None, help="sim: no STUN server")
    group.add_argument("--packets", dest="record_packets", action="store_true", default=None,
                       help=RunParams.param("record_packets").help)


def _params(ns: argparse.Namespace) -> dict[str, Any]:
    from .params import RunParams

    return {k: getattr(ns, k) for k in RunParams.names() if getattr(ns, k, None) is not None}


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

    fmt = argparse.RawDescriptionHelpFormatter
    demo = sub.add_parser("demo", help="one paired call (basic): event table, summary, plot", epilog=EXIT_HELP,
                          formatter_class=fmt)
    _add_params(demo)
    demo.add_argument("--plot", default="rtclab-demo.png", help="where to write the summary plot ('' for none)")
    demo.add_argument("--allow-failure", action="store_true", help="exit 0 even when the call does not connect")

    runp = sub.add_parser("run", help="run one flow and print its outcome, metrics and events", epilog=EXIT_HELP,
                          formatter_class=fmt)
    runp.add_argument("flow", help="flow name (see 'flows')")
    _add_params(runp)
    runp.add_argument("--save", default=None, help="write the events to this CSV file")
    runp.add_argument("--plot", default=None, help="write the summary plot to this PNG file")
    runp.add_argument("--all", action="store_true", help="print every row (pair checks too)")
    runp.add_argument("--allow-failure", action="store_true",
                      help="exit 0 even when the outcome is not 'connected' (e.g. to show a failing flow)")

    from .params import MAX_RUNS, MAX_TRIALS, MAX_WORKERS

    sw = sub.add_parser("sweep", help="run many trials over a grid; print the median metrics per flow and grid point",
                        epilog=f"A sweep runs at most {MAX_RUNS} calls (flows x grid points x trials). "
                               "Exit status 0 whatever the outcomes (they are the data); 2 for bad arguments.")
    sw.add_argument("flow", nargs="+", help="flow name(s)")
    sw.add_argument("--trials", type=_bounded_int("trials", 1, MAX_TRIALS, "trials per flow and grid point"), default=10,
                    metavar="N", help=f"trials per flow and grid point, 1 to {MAX_TRIALS} (default: 10)")
    sw.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="a parameter and its values (repeatable)")
    sw.add_argument("--workers", type=_bounded_int("workers", 1, MAX_WORKERS, "worker processes"), default=None,
                    metavar="N", help=f"worker processes, 1 to {MAX_WORKERS} (default: 1 for small sweeps, else the cores)")
    sw.add_argument("--out", default=None, help="CSV file for the rows")
    _add_params(sw)

    sub.add_parser("flows", help="list the flows")
    sub.add_parser("check", help="check this environment for the course (as notebook 00 does); exit 1 on a problem")

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
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (every run closes its peers on the way out)
        # a sweep's progress bar may be mid-line: start afresh (over it on a terminal, below it in a log)
        start = "\r" if sys.stderr.isatty() else "\n" if ns.cmd == "sweep" else ""
        print(f"{start}rtclab: interrupted", file=sys.stderr)
        return 130
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
    if ns.cmd == "check":
        from .checks import check_setup

        report = check_setup()
        for row in report.itertuples(index=False):
            print(f"{row.check:36s} {row.result}")
        return 0 if (report["result"] == "ok").all() else 1
    if ns.cmd == "demo":
        r = run("basic", **_params(ns))
        _print_run(r)
        if ns.plot:
            _save_plot(r, ns.plot)
        return _exit_status(r, ns)
    if ns.cmd == "run":
        r = run(ns.flow, **_params(ns))
        _print_run(r, all_rows=ns.all)
        if ns.save:
            print(f"events written to {r.save(ns.save)}")
        if ns.plot:
            _save_plot(r, ns.plot)
        return _exit_status(r, ns)
    if ns.cmd == "sweep":
        from .sweeps import sweep

        grid = {}
        for item in ns.grid:
            if "=" not in item:
                raise ValueError(f"--grid wants NAME=V1,V2, got {item!r}")
            name, values = item.split("=", 1)
            grid[name] = [_auto(v) for v in values.split(",")]
        df = sweep(ns.flow, trials=ns.trials, grid=grid, workers=ns.workers, **_params(ns))
        print(sweep_summary(df, list(grid)).to_string())
        print(f"(n: trials per row; outcome columns: how many ended so; *_ms: median over the connected trials)")
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


def _exit_status(r: Any, ns: argparse.Namespace) -> int:
    if r.outcome == "connected" or ns.allow_failure:
        return 0
    print(f"rtclab: the call's outcome is {r.outcome!r}, not 'connected' (exit 1; --allow-failure exits 0)", file=sys.stderr)
    return 1


def sweep_summary(df: pd.DataFrame, grid: list[str]) -> pd.DataFrame:
    """One row per flow and grid point: trials, outcome counts and the median of each timing metric.

    Medians are over the connected trials only (a failed call has no connect time).

    Examples
    --------
    >>> df = pd.DataFrame({"flow": ["basic"] * 3, "outcome": ["connected", "connected", "failed"],
    ...                    "t_connected_ms": [10.0, 30.0, float("nan")]})
    >>> sweep_summary(df, [])[["n", "connected", "failed", "t_connected_ms"]].to_dict("records")
    [{'n': 3, 'connected': 2, 'failed': 1, 't_connected_ms': 20.0}]
    """
    keys = ["flow", *grid]
    groups = df.groupby(keys, sort=False, dropna=False)
    out = groups.size().rename("n").to_frame()
    out = out.join(groups["outcome"].value_counts().unstack(fill_value=0))
    ok = df[df["outcome"] == "connected"]
    metrics = [m for m in SUMMARY_METRICS if m in df.columns]
    if metrics:
        out = out.join(ok.groupby(keys, sort=False, dropna=False)[metrics].median().round(1))
    return out


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
