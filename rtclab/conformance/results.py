"""Where results live: Chromium's reference traces in ``data/chromium/`` and the last real-network run.

=====================================  ==================================================================
``data/chromium/scenarios/<slug>.csv``  each scenario's frame in Chromium (``<slug>``: the name with
                                        ``/`` as ``__``), written by ``python -m rtclab.conformance record``
``data/chromium/scenarios.json``        the Chromium version and every scenario's title and essentials
``data/chromium/flows/<flow>-browser-<side>.csv``  each course flow with a browser side
                                        (:func:`rtclab.browser.arun_browser`), Chromium on ``<side>``
``data/chromium/rtclab-real.json``      rtclab's essentials on the real network (namespace loopback) from
                                        the last ``python -m rtclab.conformance table``
``data/chromium/conformance-table.md``  the generated table (the README holds a copy between markers)
=====================================  ==================================================================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..data import path as data_path
from ..trace import load, save

__all__ = [
    "FLOW_RUNS",
    "chromium_dir",
    "chromium_frame",
    "load_chromium",
    "load_real",
    "save_chromium",
    "save_real",
]

#: Course flows recorded with Chromium on one side: (flow, browser side).
FLOW_RUNS: tuple[tuple[str, str], ...] = (
    ("basic", "caller"), ("basic", "callee"), ("mdn", "caller"), ("mdn", "callee"), ("counteroffer", "callee"),
)


def chromium_dir() -> Path:
    """``data/chromium``."""
    return data_path("chromium")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def save_chromium(frames: dict[str, pd.DataFrame], essentials: dict[str, dict[str, Any]], titles: dict[str, str], meta: dict[str, Any], *, folder: Path | None = None) -> list[Path]:
    """Write the scenario frames and ``scenarios.json`` (keeps entries of scenarios not re-recorded)."""
    folder = folder or chromium_dir()
    written = []
    index_path = folder / "scenarios.json"
    index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.exists() else {"scenarios": {}}
    for name, frame in frames.items():
        slug = name.replace("/", "__")
        written.append(save(frame, folder / "scenarios" / f"{slug}.csv", meta={"scenario": name, **meta}))
        index["scenarios"][name] = {"title": titles[name], "essentials": _jsonable(essentials[name])}
    index.update({k: v for k, v in meta.items()})
    index_path.parent.mkdir(parents=True, exist_ok=True)
    index_path.write_text(json.dumps(index, indent=1, sort_keys=False) + "\n")
    written.append(index_path)
    return written


def load_chromium(folder: Path | None = None) -> dict[str, Any]:
    """``scenarios.json``: ``{"chromium": version, "scenarios": {name: {"title", "essentials"}}}`` (empty if absent)."""
    p = (folder or chromium_dir()) / "scenarios.json"
    return json.loads(p.read_text()) if p.exists() else {"scenarios": {}}


def chromium_frame(name: str, folder: Path | None = None) -> pd.DataFrame:
    """The stored Chromium frame of scenario ``name``."""
    return load((folder or chromium_dir()) / "scenarios" / f"{name.replace('/', '__')}.csv")


def save_real(essentials: dict[str, dict[str, Any]], meta: dict[str, Any], *, folder: Path | None = None) -> Path:
    """Write ``rtclab-real.json``."""
    p = (folder or chromium_dir()) / "rtclab-real.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({**meta, "scenarios": _jsonable(essentials)}, indent=1) + "\n")
    return p


def load_real(folder: Path | None = None) -> dict[str, Any]:
    """``rtclab-real.json`` (empty if absent)."""
    p = (folder or chromium_dir()) / "rtclab-real.json"
    return json.loads(p.read_text()) if p.exists() else {"scenarios": {}}
