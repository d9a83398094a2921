"""One parameter model: RunParams checks run(), sweep(), the command line and the call panel alike."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import rtclab
from rtclab.__main__ import main as cli_main
from rtclab.__main__ import sweep_summary
from rtclab.params import MAX_RUNS, RunParams

ROOT = Path(__file__).resolve().parents[1]


# --- the model -------------------------------------------------------------------------------------


def test_defaults_are_the_model() -> None:
    """rtclab.DEFAULTS is RunParams' defaults, field for field and in order."""
    assert rtclab.DEFAULTS == RunParams().to_dict()
    assert list(rtclab.DEFAULTS) == RunParams.names()


def test_every_field_says_unit_range_and_meaning() -> None:
    """Each field's description names its meaning and its accepted values."""
    lines = RunParams.describe().splitlines()
    assert [line.split(":")[0] for line in lines] == RunParams.names()
    assert "signaling_latency_ms: one-way delay of each signaling message (milliseconds, in [0, 3600000]" in RunParams.describe()
    assert RunParams.param("deadline_s").range_text() == "seconds, in (0, 3600]; None: 90 s on sim, 10 s on real"


def test_frozen_and_resolved() -> None:
    """RunParams cannot be changed after checking; resolved() fills the network's deadline."""
    p = RunParams(network="real")
    with pytest.raises(AttributeError):
        p.loss = 0.5  # type: ignore[misc]
    assert p.resolved().deadline_s == 10.0
    assert RunParams().resolved().deadline_s == 90.0
    assert RunParams(nat=["symmetric", "full-cone"]).nat == ("symmetric", "full-cone")


@pytest.mark.parametrize(
    "params, text",
    [
        ({"signaling_latency_ms": -1}, "signaling_latency_ms must be a number of milliseconds in [0, 3600000], got -1"),
        ({"signaling_latency_ms": 4e6}, "signaling_latency_ms must be a number of milliseconds in [0, 3600000]"),
        ({"jitter_ms": float("nan")}, "jitter_ms must be a number of milliseconds in [0, 3600000], got nan"),
        ({"link_latency_ms": float("inf")}, "link_latency_ms must be a number of milliseconds"),
        ({"deadline_s": 1e9}, "deadline_s must be a number of seconds in (0, 3600]"),
        ({"deadline_s": -5}, "deadline_s must be a number of seconds in (0, 3600]"),
        ({"hold_s": -1}, "hold_s must be a number of seconds in [0, 3600]"),
        ({"seed": -1}, "seed must be an integer in [0, 4294967295], got -1"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"stun": 1}, "stun must be True or False, got 1"),
        ({"link_loss": 2}, "link_loss must be a probability in [0, 1], got 2"),
        ({"answer_delay_ms": None}, "answer_delay_ms=None (wait for a real click) needs network='real'"),
        ({"network": "real", "cut_at_s": 1.0}, "cut_at_s (cutting the media path) needs network='sim'"),
    ],
)
def test_bad_values_name_the_parameter_and_range(params: dict[str, Any], text: str) -> None:
    """run() refuses each bad value before starting, with the parameter's name and range."""
    with pytest.raises(ValueError) as info:
        rtclab.run("basic", **params)
    assert text in str(info.value)


def test_unknown_parameter_is_a_type_error() -> None:
    """A misspelt name is refused with the list of known ones."""
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['latency_ms'\]"):
        RunParams.from_dict({"latency_ms": 5})


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"trials": 0}, "trials must be an integer in [1, 10000]"),
        ({"trials": -3}, "trials must be an integer in [1, 10000]"),
        ({"trials": 100_000_000}, "trials must be an integer in [1, 10000]"),
        ({"workers": 0}, "workers must be an integer in [1, 64]"),
        ({"workers": -3}, "workers must be an integer in [1, 64]"),
        ({"trials": 10_000, "grid": {"signaling_latency_ms": list(range(11))}}, f"a sweep runs at most {MAX_RUNS} calls"),
        ({"deadline_s": 1e9}, "deadline_s must be a number of seconds in (0, 3600]"),
    ],
)
def test_sweep_refuses_nonsense_before_running(kwargs: dict[str, Any], text: str) -> None:
    """sweep() checks trials, workers, its total size and every run's parameters up front."""
    with pytest.raises(ValueError) as info:
        rtclab.sweep("basic", progress=False, **kwargs)
    assert text in str(info.value)


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, text",
    [
        (["sweep", "basic", "--trials", "0"], "argument --trials: trials must be an integer in [1, 10000]"),
        (["sweep", "basic", "--trials", "-3"], "argument --trials: trials must be an integer in [1, 10000]"),
        (["sweep", "basic", "--trials", "100000000"], "argument --trials: trials must be an integer in [1, 10000]"),
        (["sweep", "basic", "--workers", "0"], "argument --workers: workers must be an integer in [1, 64]"),
        (["sweep", "basic", "--workers", "-3"], "argument --workers: workers must be an integer in [1, 64]"),
        (["run", "forgot-candidates", "--deadline", "1e9"], "argument --deadline: deadline_s must be a number of seconds in (0, 3600], got '1e9'"),
        (["run", "basic", "--latency", "3600001"], "argument --latency: signaling_latency_ms must be a number of milliseconds in [0, 3600000]"),
        (["run", "basic", "--jitter", "-1"], "argument --jitter: jitter_ms must be a number of milliseconds in [0, 3600000]"),
        (["run", "basic", "--answer-delay", "nan"], "argument --answer-delay: answer_delay_ms must be a number of milliseconds"),
        (["run", "basic", "--reorder", "1.5"], "argument --reorder: reorder must be a probability in [0, 1]"),
        (["run", "basic", "--link-loss", "-0.1"], "argument --link-loss: link_loss must be a probability in [0, 1]"),
        (["run", "basic", "--seed", "-1"], "argument --seed: seed must be an integer in [0, 4294967295]"),
        (["run", "basic", "--nat", "cgn"], "argument --nat: nat must be one of"),
        (["run", "basic", "--network", "internet"], "argument --network: network must be 'sim' or 'real', got 'internet'"),
        (["sweep", "basic", "basic", "--trials", "10000", "--grid", "signaling_latency_ms=1,2,3,4,5,6"],
         f"a sweep runs at most {MAX_RUNS} calls"),
    ],
)
def test_cli_bad_values_exit_2_naming_option_and_range(argv: list[str], text: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each bad value exits with status 2 and a message naming the option and its range."""
    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    assert info.value.code == 2
    assert text in capsys.readouterr().err


def test_cli_help_is_generated_from_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    """run --help lists each flagged field with its meaning and range, and the exit statuses."""
    with pytest.raises(SystemExit):
        cli_main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in RunParams.names():
        spec = RunParams.param(name)
        if spec.flag:
            assert spec.flag in text
            assert " ".join(spec.help.split()) in text
    assert "milliseconds, in [0, 3600000]" in text
    assert "--allow-failure" in text and "exit status: 0 when the call's outcome is 'connected'" in text


def test_cli_run_exits_1_when_not_connected(capsys: pytest.CaptureFixture[str]) -> None:
    """run on a failing flow exits 1 (saying why on stderr); --allow-failure exits 0."""
    argv = ["run", "forgot-candidates", "--deadline", "5"]
    assert cli_main(argv) == 1
    captured = capsys.readouterr()
    assert "outcome: timeout" in captured.out
    assert "the call's outcome is 'timeout', not 'connected'" in captured.err
    assert cli_main([*argv, "--allow-failure"]) == 0


def test_cli_keyboard_interrupt_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A KeyboardInterrupt during a command ends with status 130 and one line on stderr."""
    import rtclab.lab

    def interrupted(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rtclab.lab, "run", interrupted)
    assert cli_main(["run", "basic"]) == 130
    assert capsys.readouterr().err == "rtclab: interrupted\n"


def test_ctrl_c_on_a_sweep_in_a_terminal_prints_one_line() -> None:
    """SIGINT to the whole process group (Ctrl-C) mid-sweep: exit 130, no traceback from parent or workers."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # e.g. a suite started in the background by a script
        pytest.skip("SIGINT is ignored in this process, and so in the sweep it starts: no Ctrl-C to test")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtclab", "sweep", "forgot-candidates", "--trials", "2000", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        seen = b""
        while b"sweep forgot-candidates" not in seen:  # the progress bar: the sweep has started
            chunk = proc.stderr.read(1)  # type: ignore[union-attr]
            assert chunk, f"the sweep ended before it could be interrupted: {seen[-500:]!r}"
            seen += chunk
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = (seen + err).decode()
    assert proc.returncode == 130, text[-2000:]
    assert "Traceback" not in text
    assert re.split(r"[\r\n]", text.rstrip())[-1] == "rtclab: interrupted"  # its own line, after the progress bar


def test_sweep_summary_has_the_metrics_per_flow_and_grid_point() -> None:
    """The sweep summary has one row per flow and grid point: n, outcome counts, medians over connected trials."""
    df = pd.DataFrame({
        "flow": ["basic"] * 4 + ["vanilla"] * 2,
        "signaling_latency_ms": [10, 10, 50, 50, 10, 10],
        "outcome": ["connected", "failed", "connected", "connected", "connected", "connected"],
        "t_connected_ms": [100.0, 900.0, 200.0, 300.0, 400.0, 600.0],
        "answer_to_media_ms": [1.0, float("nan"), 2.0, 4.0, 5.0, 7.0],
    })
    s = sweep_summary(df, ["signaling_latency_ms"])
    assert list(s.index) == [("basic", 10), ("basic", 50), ("vanilla", 10)]
    assert list(s["n"]) == [2, 2, 2]
    assert list(s["failed"]) == [1, 0, 0]
    assert list(s["t_connected_ms"]) == [100.0, 250.0, 500.0]
    assert list(s["answer_to_media_ms"]) == [1.0, 3.0, 6.0]


def test_cli_sweep_prints_timing_per_grid_point(capsys: pytest.CaptureFixture[str]) -> None:
    """python -m rtclab sweep prints medians of the timing metrics for each flow and latency."""
    assert cli_main(["sweep", "basic", "--trials", "2", "--workers", "1", "--grid", "signaling_latency_ms=10,200"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:3] == ["n", "connected", "t_connected_ms"]
    rows = {t[-7]: t[-6:] for t in (line.split() for line in out.splitlines()) if len(t) >= 7 and t[-7] in ("10", "200")}
    assert [rows[k][:2] for k in ("10", "200")] == [["2", "2"], ["2", "2"]]  # n, connected
    assert float(rows["200"][2]) > float(rows["10"][2])  # more signaling latency, later connection


# --- the call panel --------------------------------------------------------------------------------


def test_panel_controls_follow_the_model() -> None:
    """The panel's sliders stay inside the parameters' ranges, and bad fixed parameters are refused."""
    pytest.importorskip("ipywidgets")
    from rtclab.widgets import CallPanel

    panel = CallPanel("basic")
    assert panel.latency.min >= RunParams.param("signaling_latency_ms").low
    assert panel.latency.max <= RunParams.param("signaling_latency_ms").high
    assert "latency" in panel.latency.description
    with pytest.raises(ValueError, match="loss must be a probability in \\[0, 1\\]"):
        CallPanel("basic", loss=3)
