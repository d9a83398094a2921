"""Command line for trace files: ``python -m rtclab diagnose FILE`` and ``python -m rtclab plot FILE``.

Both read any file :func:`rtclab.load_trace` reads (a saved run, a
webrtc-internals dump, an rtcstats dump, gzip or not). A file that is none of
these exits with status 2 and one line saying why (the file, the problem, the
line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "add_parsers", "dispatch"]

COMMANDS = ("diagnose", "plot")


def add_parsers(sub: Any) -> None:
    """Add the ``diagnose`` and ``plot`` subcommands to an argparse subparsers object."""
    d = sub.add_parser("diagnose", help="explain a saved run, a webrtc-internals dump or an rtcstats dump")
    d.add_argument("file", help="the trace file")
    d.add_argument("--anonymize", action="store_true", help="replace IP addresses in what is printed")
    d.add_argument("--lacks", action="store_true", help="also list everything the trace cannot show")
    p = sub.add_parser("plot", help="draw a saved run or a browser dump (sequence diagram and states) as PNG")
    p.add_argument("file", help="the trace file")
    p.add_argument("-o", "--out", default=None, help="the PNG to write (default: FILE's name with .png, here)")
    p.add_argument("--anonymize", action="store_true", help="replace IP addresses in the labels")


def dispatch(ns: argparse.Namespace) -> int | None:
    """Run ``ns.cmd`` if it is one of :data:`COMMANDS` (its exit status), else ``None``."""
    if ns.cmd not in COMMANDS:
        return None
    from .traces import TraceFormatError, load_trace

    try:
        frame = load_trace(ns.file, anonymize=ns.anonymize)
    except TraceFormatError as exc:
        print(f"rtclab {ns.cmd}: error: {exc}", file=sys.stderr)
        return 2
    if ns.cmd == "diagnose":
        from .diagnose import diagnose

        result = diagnose(frame)
        meta = frame.attrs.get("meta", {})
        peers = ", ".join(f"{pc} = {actor}" for pc, actor in (meta.get("peers") or {}).items())
        print(f"{ns.file}: {meta.get('source', '?')}" + (f" ({peers})" if peers else "") + f", {len(frame)} events")
        print(result)
        if ns.lacks and result.lacks:
            print("\nWhat this trace cannot show:")
            for item in result.lacks:
                print(f"  - {item}")
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import summary

    out = Path(ns.out) if ns.out else Path(Path(ns.file).name.split(".")[0] + ".png")
    fig = summary(frame)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    print(f"plot written to {out}")
    return 0
