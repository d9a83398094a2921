"""Tests of ``python -m rtclab diagnose FILE`` and ``python -m rtclab plot FILE``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rtclab
from rtclab.__main__ import main

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "aoc.csv"
    rtclab.run("answer-on-click", topology="nat").save(path)
    return path


def test_diagnose_a_saved_run(saved_run, capsys):
    """A run saved with Run.save is diagnosed: the lost candidates first, with the lesson to read."""
    assert main(["diagnose", str(saved_run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{saved_run}: rtclab")
    first = out.index("1. [error] Candidates arrived before the peer connection existed")
    assert "notebooks/03_timing_trap.ipynb" in out[first:]


@pytest.mark.parametrize(("name", "source"), [("browser/early-candidates.internals.json", "webrtc-internals"),
                                              ("browser/early-candidates.rtcstats.jsonl", "rtcstats"),
                                              ("traces/legacy-chrome74.internals.json", "webrtc-internals")])
def test_diagnose_browser_dumps(name, source, capsys):
    """webrtc-internals and rtcstats dumps print their peers, findings and what they cannot decide."""
    assert main(["diagnose", str(DATA / name), "--lacks"]) == 0
    out = capsys.readouterr().out
    assert f": {source} (" in out and "caller" in out
    assert "Not decided" in out and "What this trace cannot show" in out
    if "early" in name:
        assert "Candidates added before the remote description (InvalidStateError)" in out


def test_diagnose_anonymized(capsys):
    """--anonymize keeps addresses out of what is printed."""
    assert main(["diagnose", str(DATA / "traces" / "rtcstats-js-hangup.jsonl"), "--anonymize"]) == 0
    out = capsys.readouterr().out
    assert "'disconnected' treated as the end of the call" in out
    assert "198.51.100.9" not in out and "10.0.0.5" not in out


@pytest.mark.parametrize("name", ["browser/basic.rtcstats.jsonl", "browser/basic.internals.json.gz", "saved"])
def test_plot_writes_a_png(name, saved_run, tmp_path, capsys):
    """plot draws the summary figure of a run or a dump into a PNG."""
    src = saved_run if name == "saved" else DATA / name
    out = tmp_path / "fig.png"
    assert main(["plot", str(src), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert f"plot written to {out}" in capsys.readouterr().out


def test_plot_default_name(tmp_path, monkeypatch, capsys):
    """Without -o the PNG is named after the file, in the current folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(DATA / "browser" / "forgot-candidates.rtcstats.jsonl")]) == 0
    assert (tmp_path / "forgot-candidates.png").exists()


@pytest.mark.parametrize("cmd", ["diagnose", "plot"])
def test_not_a_trace_exits_2(cmd, tmp_path, capsys):
    """A file that is no trace exits 2 with one line naming the file and the problem, no traceback."""
    bad = tmp_path / "notes.txt"
    bad.write_text("shopping list\n")
    assert main([cmd, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "not a trace rtclab knows" in err
    assert not (tmp_path / "notes.png").exists()


def test_command_line_end_to_end(tmp_path):
    """The real command: exit 0 on a dump, 2 on a truncated one, with the line in the message."""
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    ok = subprocess.run([sys.executable, "-m", "rtclab", "diagnose", str(DATA / "browser" / "basic.rtcstats.jsonl")],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0 and "no problem found" in ok.stdout
    cut = tmp_path / "cut.json"
    cut.write_text((DATA / "browser" / "basic.internals.json").read_text()[:5000])
    bad = subprocess.run([sys.executable, "-m", "rtclab", "diagnose", str(cut)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "line " in bad.stderr and "truncated" in bad.stderr
