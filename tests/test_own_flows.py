"""A learner's own apps: run, arun, sweep (also over worker processes), flow_source, errors at their line."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import rtclab
from rtclab.flows import basic_callee, basic_caller, perfect_app

ROOT = Path(__file__).resolve().parent.parent

# A learner's cell: the textbook caller and a callee with a one-line bug, as source text.
CELL = '''
async def my_caller(app):
    pc = app.RTCPeerConnection()
    pc.on("icecandidate", lambda c: app.send({"type": "new-ice-candidate", "target": app.other, "candidate": c}))

    async def on_negotiationneeded():
        await pc.setLocalDescription(await pc.createOffer())
        app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})

    pc.on("negotiationneeded", on_negotiationneeded)

    async def on_message(msg):
        if msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])
        elif msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])

    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)


async def my_callee(app):
    state = {"pc": None}

    async def on_message(msg):
        if msg["type"] == "video-offer":
            pc = state["pc"] = app.RTCPeerConnection()
            pc.on("icecandidate", lambda c: app.send({"type": "new-ice-candidate", "target": app.other, "candidate": c}))
            await pc.setRemoteDescription(msg["sdp"])
            for track in app.getUserMedia():
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            await state["pc"].addIceCandidate(msg["candidate"])

    app.on_message(on_message)


async def typo_callee(app):
    async def on_message(msg):
        if msg["type"] == "video-offer":
            pc = app.RTCPeerConnection()
            await pc.setRemoteDescription(msg["sdp"])
            await pc.setLocalDescription(await pc.createAnser())  # the typo
    app.on_message(on_message)


async def early_candidate_callee(app):
    pc = app.RTCPeerConnection()

    async def on_message(msg):
        if msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])  # before any remote description

    app.on_message(on_message)


async def crashing_caller(app):
    pc = app.RTCPeerConnection()
    raise RuntimeError("my caller gave up")


async def handler_crash_caller(app):
    pc = app.RTCPeerConnection()

    def on_negotiationneeded():
        raise ValueError("no offer today")

    pc.on("negotiationneeded", on_negotiationneeded)
    for track in app.getUserMedia():
        pc.addTrack(track)
'''


def _cell(filename: str = "<ipython-input-3-5f1c2a>", module: str = "__main__") -> types.SimpleNamespace:
    """The cell's functions, compiled from a string as a notebook compiles a cell (no file behind it)."""
    namespace: dict[str, Any] = {"__name__": module}
    exec(compile(CELL, filename, "exec"), namespace)
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if callable(v)})


def _line(text: str) -> int:
    """The 1-based line of CELL that contains ``text``."""
    for number, line in enumerate(CELL.splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(text)


def _errors(r: rtclab.Run, actor: str | None = None) -> pd.DataFrame:
    e = r.events[r.events["kind"] == "error"]
    return e if actor is None else e[e["actor"] == actor]


# -- running own apps ------------------------------------------------------------------------


def test_own_apps_play_exactly_like_the_named_flow_they_copy() -> None:
    """caller=/callee= with the basic flow's functions gives the same frame as run('basic')."""
    own = rtclab.run(caller=basic_caller, callee=basic_callee, seed=4, topology="nat")
    named = rtclab.run("basic", seed=4, topology="nat")
    assert own.flow == "basic_caller/basic_callee"
    assert own.params["flow"] == "basic_caller/basic_callee"
    assert own.outcome == "connected"
    pd.testing.assert_frame_equal(own.events, named.events)
    assert own.metrics.drop("duration_ms").equals(named.metrics.drop("duration_ms"))


def test_a_flow_object_runs_with_every_parameter_and_arun_awaits_it() -> None:
    """A learner-built Flow takes the run parameters; arun awaits the same call."""
    flow = rtclab.Flow("mine", "my apps", basic_caller, basic_callee)
    r = rtclab.run(flow, seed=2, topology="nat", nat="symmetric", stun=True, turn=False)
    assert (r.flow, r.outcome) == ("mine", "failed")  # symmetric NATs need TURN, as for 'basic'
    r2 = asyncio.run(rtclab.arun(flow, seed=2, topology="nat", nat="symmetric", turn=True))
    assert (r2.flow, r2.outcome) == ("mine", "connected")
    r3 = asyncio.run(rtclab.arun(caller=basic_caller, callee=basic_callee, seed=2))
    assert r3.outcome == "connected"


def test_a_symmetric_app_is_one_function_for_both_sides() -> None:
    """perfect negotiation written as one app: named after it, plays as the 'perfect' flow."""
    own = rtclab.run(caller=perfect_app, callee=perfect_app, seed=1)
    assert own.flow == "perfect_app"
    pd.testing.assert_frame_equal(own.events, rtclab.run("perfect", seed=1).events)


def test_bad_own_flows_are_refused_with_a_clear_type_error() -> None:
    """Only one app, a flow and apps together, a plain def, a nameless Flow: TypeError saying what to write."""
    with pytest.raises(TypeError, match="callee= is missing.*same function twice"):
        rtclab.run(caller=basic_caller)
    with pytest.raises(TypeError, match="not both"):
        rtclab.run("basic", caller=basic_caller, callee=basic_callee)

    def not_async(app: Any) -> None:
        pass

    with pytest.raises(TypeError, match="must be an async function: write 'async def not_async"):
        rtclab.run(caller=not_async, callee=basic_callee)
    with pytest.raises(TypeError, match="must be an async function"):
        rtclab.Flow("x", "y", basic_caller, not_async)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty string"):
        rtclab.Flow("", "y", basic_caller, basic_callee)
    with pytest.raises(TypeError, match="a name .* or an rtclab.Flow"):
        rtclab.run(42)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown flow 'nope'"):
        rtclab.run("nope")


def test_flow_source_prints_own_apps_and_says_when_source_is_missing() -> None:
    """Own apps from a file print their source; exec'd ones print a one-line comment instead of raising."""
    flow = rtclab.Flow("t", "t", basic_caller, perfect_app)
    text = rtclab.flow_source(flow)
    assert "async def basic_caller" in text and "async def perfect_app" in text
    assert "def send_candidates" in text  # the helpers they use come first
    cell = _cell("<ipython-input-9-0>")
    text = rtclab.flow_source(rtclab.Flow("cell", "c", cell.my_caller, cell.my_callee))
    assert text.splitlines() == [
        "# source of my_caller is not available (defined in <ipython-input-9-0>): could not get source code",
        "",
        "# source of my_callee is not available (defined in <ipython-input-9-0>): could not get source code",
    ]


def test_flow_source_does_not_show_rtclab_helpers_a_learner_replaced() -> None:
    """A learner's own send_candidates is not mistaken for rtclab.flows.send_candidates."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(textwrap.dedent('''
        def send_candidates(app, pc):
            pass

        async def solo(app):
            send_candidates(app, app.RTCPeerConnection())
    '''), ns)
    assert "def send_candidates(app: App" not in rtclab.flow_source(rtclab.Flow("s", "s", ns["solo"], ns["solo"]))


# -- errors in the learner's code ----------------------------------------------------------------


def test_an_exception_in_a_message_handler_names_the_cells_line() -> None:
    """A typo in an async on_message handler: an error row at the cell's line, and the run ends."""
    cell = _cell("<ipython-input-3-5f1c2a>")
    r = rtclab.run(caller=cell.my_caller, callee=cell.typo_callee, seed=1, deadline_s=20)
    err = _errors(r, "callee")
    assert list(err["value"]) == ["AttributeError"]
    detail = err["detail"].iloc[0]
    assert "createAnser" in detail
    assert detail.endswith(f"(at <ipython-input-3-5f1c2a>:{_line('createAnser')}, in on_message)")
    assert r.outcome in ("timeout", "failed")  # ended, never hung


def test_an_error_raised_inside_rtclab_is_reported_at_the_app_line_that_called() -> None:
    """addIceCandidate before a remote description: InvalidStateError at the learner's await, not in peer.py."""
    cell = _cell("<ipython-input-4-aa>")
    r = rtclab.run(caller=cell.my_caller, callee=cell.early_candidate_callee, seed=1, deadline_s=5)
    err = _errors(r, "callee")
    assert set(err["value"]) == {"InvalidStateError"}
    # the browser's rejection of the call (name addIceCandidate), then the app's uncaught error (onmessage)
    assert list(err["name"].unique()) == ["addIceCandidate", "onmessage"]
    uncaught = err[err["name"] == "onmessage"]
    line = _line("before any remote description")
    assert len(uncaught) >= 1
    assert all(d.endswith(f"(at <ipython-input-4-aa>:{line}, in on_message)") for d in uncaught["detail"])
    assert not err["detail"].str.contains("peer.py").any()


def test_an_exception_at_the_top_of_an_app_and_in_a_sync_event_handler() -> None:
    """The app function itself raising, and a plain pc.on handler raising: both error rows point at the cell."""
    cell = _cell("/tmp/ipykernel_1234/3021659.py")
    r = rtclab.run(caller=cell.crashing_caller, callee=cell.my_callee, seed=1, deadline_s=5)
    err = _errors(r, "caller")
    assert list(err["name"]) == ["app"]
    assert err["detail"].iloc[0] == (
        f"my caller gave up (at /tmp/ipykernel_1234/3021659.py:{_line('gave up')}, in crashing_caller)")
    assert (r.outcome, r.reason) == ("failed", "RuntimeError in app")
    assert r.events["name"].eq("deadline").any()  # the callee waited for an offer until the deadline, no longer
    r = rtclab.run(caller=cell.handler_crash_caller, callee=cell.my_callee, seed=1, deadline_s=5)
    err = _errors(r, "caller")
    assert list(err["name"]) == ["onnegotiationneeded"]
    assert err["detail"].iloc[0].endswith(f":{_line('no offer today')}, in on_negotiationneeded)")


def test_an_app_that_spins_without_letting_time_pass_ends_as_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A polling loop on sleep(0) starves the virtual clock: the run ends 'error' (Stalled) at the loop's line, never hangs."""
    import rtclab.lab

    monkeypatch.setattr(rtclab.lab, "STALL_WALL_S", 1.0)
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(textwrap.dedent('''
        import asyncio

        async def polling_caller(app):
            pc = app.RTCPeerConnection()
            while pc.connectionState != "connected":
                await asyncio.sleep(0)  # a browser's clock would move on; the virtual one cannot
    '''), "<ipython-input-11-ff>", "exec"), ns)
    r = rtclab.run(caller=ns["polling_caller"], callee=basic_callee, seed=1, deadline_s=5)
    assert r.outcome == "error" and r.reason.startswith("Stalled: virtual time stood still for 1 s")
    stalled = r.events[(r.events["kind"] == "error") & (r.events["value"] == "Stalled")]
    assert stalled["detail"].iloc[0].endswith("(at <ipython-input-11-ff>:7, in polling_caller)")
    assert rtclab.run("basic", seed=1).outcome == "connected"  # the guard leaves ordinary runs alone


def test_built_in_flows_keep_their_error_details() -> None:
    """Built-in flows live in rtclab: their error rows get no location (reference traces unchanged)."""
    r = rtclab.run("glare", seed=1)
    err = _errors(r)
    assert len(err) and not err["detail"].str.contains(r"\(at ").any()


# -- sweeps over worker processes ------------------------------------------------------------------


@pytest.mark.parametrize("module", ["__main__", "learner_cell_5"])
def test_own_flows_defined_in_a_dynamic_module_reach_two_worker_processes(module: str) -> None:
    """Functions exec'd as a notebook's __main__ or a non-importable module: stdlib pickle refuses them; sweep sends them, same rows."""
    cell = _cell("<ipython-input-5-bb>", module=module)
    flow = rtclab.Flow("cell", "from a cell", cell.my_caller, cell.my_callee)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(flow)
    kw: dict[str, Any] = dict(trials=3, grid={"topology": ["lan", "nat"]}, seed=7, progress=False)
    one = rtclab.sweep(flow, workers=1, **kw)
    two = rtclab.sweep(flow, workers=2, **kw)
    assert list(one["flow"]) == ["cell"] * 6
    assert set(one["outcome"]) == {"connected"}
    cols = [c for c in one.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(one[cols], two[cols])


def test_sweep_takes_caller_and_callee_and_mixes_own_flows_with_names() -> None:
    """sweep(caller=, callee=) and a list mixing a name and a Flow: one flow column value per flow."""
    cell = _cell("<ipython-input-6-cc>")
    df = rtclab.sweep(caller=cell.my_caller, callee=cell.my_callee, trials=2, progress=False)
    assert list(df["flow"]) == ["my_caller/my_callee"] * 2
    mixed = rtclab.sweep(["basic", rtclab.Flow("cell", "c", cell.my_caller, cell.typo_callee)],
                         trials=1, progress=False, deadline_s=5)
    assert list(mixed["flow"]) == ["basic", "cell"]
    assert list(mixed["outcome"]) == ["connected", "failed"]  # the typo: AttributeError in app
    assert mixed["errors"].iloc[1] >= 1


# -- a real notebook cell under nbval ---------------------------------------------------------------


def test_a_bug_in_a_notebook_cell_is_reported_at_that_cells_line_under_nbval(tmp_path: Path) -> None:
    """nbval runs one cell that defines a buggy callee; the error row names that cell and line as IPython does."""
    source = textwrap.dedent('''
        import rtclab
        from rtclab.flows import basic_caller

        async def callee(app):
            async def on_message(msg):
                if msg["type"] == "video-offer":
                    raise KeyError("oops")  # line 7 of this cell
            app.on_message(on_message)

        run = rtclab.run(caller=basic_caller, callee=callee, seed=1, deadline_s=5)
        detail = run.events.query("kind == 'error' and actor == 'callee'")["detail"].iloc[0]
        assert detail == "'oops' (at Cell In[1], line 7, in on_message)", detail
        assert (run.outcome, run.reason) == ("failed", "KeyError in onmessage")
    ''').strip("\n")
    nb = {
        "cells": [{"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {}, "outputs": [], "source": source}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path = tmp_path / "own_cell.ipynb"
    path.write_text(json.dumps(nb))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(path), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 passed" in proc.stdout


def test_what_learners_need_is_exported_in_a_sorted_all() -> None:
    """App, User, Flow, as_flow, run/arun/sweep, flow_source, check and Verdict are public; __all__ is isort-sorted."""
    for name in ("App", "User", "Flow", "as_flow", "run", "arun", "sweep", "flow_source", "check", "Verdict"):
        assert name in rtclab.__all__ and getattr(rtclab, name) is not None
    assert rtclab.exercises.check_02 is not None  # the course's checks, a lazy submodule

    def key(name: str) -> tuple[int, str]:
        kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return kind, name

    assert rtclab.__all__ == sorted(rtclab.__all__, key=key)


def test_the_call_panel_plays_an_own_flow() -> None:
    """CallPanel(Flow): the flow is listed and chosen, Call plays it; named flows are still plain names."""
    from rtclab.widgets import CallPanel

    flow = rtclab.Flow("mine", "my apps", basic_caller, basic_callee)
    panel = CallPanel(flow, auto_answer=True)
    assert panel.flow.value is flow
    assert panel.flow.label == "mine" and panel.flow.options[0] == ("mine", flow) and ("basic", "basic") in panel.flow.options
    r = panel.call()
    assert r is not None and (r.flow, r.outcome) == ("mine", "connected")
    panel.flow.value = "basic"
    assert panel.call().flow == "basic"
    assert CallPanel("glare").flow.value == "glare"


# -- fix-the-code checks -------------------------------------------------------------------------

DROPPING_CALLEE = '''
async def dropping_callee(app):
    pc = None

    async def on_message(msg):
        nonlocal pc
        if msg["type"] == "video-offer":
            pc = app.RTCPeerConnection()
            pc.on("icecandidate", lambda c: app.send({"type": "new-ice-candidate", "target": app.other, "candidate": c}))
            await pc.setRemoteDescription(msg["sdp"])
            for track in app.getUserMedia():
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            pass  # dropped
    app.on_message(on_message)
'''


def test_check_fails_a_callee_that_drops_candidates_even_where_it_connects() -> None:
    """The LAN call connects (peer-reflexive rescue) but lost candidates; behind NAT it fails: FAIL, same text twice."""
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(DROPPING_CALLEE, "<ipython-input-7-dd>", "exec"), ns)
    v = rtclab.exercises.check_04(ns["dropping_callee"])
    assert not v and v.passed is False
    by = v.runs.groupby("topology")
    assert set(by.get_group("lan")["outcome"]) == {"connected"}
    assert (by.get_group("lan")["candidates_lost"] > 0).all()
    assert set(by.get_group("nat")["outcome"]) - {"connected"}  # no call behind NAT connects without them
    lines = str(v).splitlines()
    assert lines[1].startswith("  lan: connected 3/3; ") and lines[-1].startswith("FAIL: ")
    assert str(rtclab.exercises.check_04(ns["dropping_callee"])) == str(v)  # deterministic: nbval stores it


def test_check_passes_the_fixed_apps_and_names_the_line_of_a_failing_one() -> None:
    """The textbook callee passes check_04; a callee with a typo fails, and the verdict points at its line."""
    good = rtclab.exercises.check_04(basic_callee)
    assert good and str(good).splitlines()[-1] == "PASS: every call connected, no candidate lost"
    cell = _cell("<ipython-input-8-ee>")
    bad = rtclab.check(caller=cell.my_caller, callee=cell.typo_callee, seeds=1, deadline_s=5)
    assert not bad
    assert str(bad).splitlines()[-1] == (
        "first error in your code: callee AttributeError: 'Peer' object has no attribute 'createAnser'"
        f" (at <ipython-input-8-ee>:{_line('createAnser')}, in on_message)")


def test_check_07_accepts_candidates_refused_for_an_ignored_offer() -> None:
    """Perfect negotiation refuses the ignored offer's candidates by design: it passes; naive glare fails."""
    perfect = rtclab.exercises.check_07(perfect_app)
    assert perfect and (perfect.runs["candidates_lost"] > 0).any()
    assert not rtclab.exercises.check_07(rtclab.flows.glare_app)
    assert not rtclab.check("perfect", seeds=1)  # the strict default would count them


def test_plots_draw_own_flows_like_named_ones() -> None:
    """run.plot() and plots.compare work on an own flow's run and on a sweep mixing it with a named flow."""
    import matplotlib.pyplot as plt

    from rtclab import plots

    flow = rtclab.Flow("mine", "my apps", basic_caller, basic_callee)
    try:
        fig = rtclab.run(flow, seed=1).plot()
        assert len(fig.axes) >= 2
        df = rtclab.sweep([flow, "answer-on-click"], trials=2, progress=False)
        ax = plots.compare(df, metric="t_connected_ms")
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert [label.split("\n")[0].split(" ")[0] for label in labels] == ["mine", "answer-on-click"]
    finally:
        plt.close("all")
