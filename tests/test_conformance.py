"""Tests of rtclab.conformance: Chromium is the oracle, Peer is measured against it.

* Chromium (root, Chromium and Playwright needed; skips with a message elsewhere): every
  scenario runs afresh in headless Chromium inside a loopback-only network namespace and its
  essentials must equal the reference stored in ``data/chromium/`` (times within ±25 %), so a
  stored trace that no longer matches Chromium fails here.
* Always (no browser): every scenario's Peer side runs on the simulated network and its
  verdict against the stored Chromium essentials is ``match`` or a documented difference.
* The README's "rtclab vs a browser" table is the generated one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rtclab import browser, data
from rtclab.conformance import cli, results, runner, table
from rtclab.conformance.core import DOCUMENTED, MATCH, MISMATCH, SCENARIOS, Scenario, compare, verdict
from rtclab.trace import load

ROOT = Path(__file__).resolve().parent.parent
ALL = runner.selected(None)
STORED = results.load_chromium()


def _stored(name: str) -> dict[str, Any]:
    entry = STORED["scenarios"].get(name)
    if entry is None:
        pytest.fail(f"no Chromium reference for {name}: run `python -m rtclab.conformance record --only {name}`")
    return entry["essentials"]


# --- the scenario set ---------------------------------------------------------------------


def test_scenarios_are_named_after_wpt_files_and_state_one_behaviour():
    """~20 scenarios, each '<wpt webrtc file>/<case>', with a title, both scripts, and a reference."""
    assert len(ALL) >= 20
    for sc in ALL:
        assert sc.wpt_file.startswith(("RTCPeerConnection-", "RTCRtpSender-", "RTCConfiguration-")), sc.name
        assert "/" in sc.name and sc.title and sc.js.lstrip().startswith("async (h) =>")
        assert callable(sc.peer) and callable(sc.essentials)
        assert sc.name in STORED["scenarios"], f"{sc.name} has no stored Chromium reference"
    assert STORED.get("chromium", "").split(".")[0].isdigit()


def test_stored_frames_give_the_stored_essentials():
    """Each stored Chromium CSV reduces to the essentials stored next to it (the JSON is not hand-edited)."""
    for sc in ALL:
        frame = results.chromium_frame(sc.name)
        assert frame.attrs["meta"]["scenario"] == sc.name
        fresh = json.loads(json.dumps(sc.essentials(frame), default=str))
        assert fresh == _stored(sc.name), sc.name


def test_compare_uses_a_time_tolerance_and_exact_values():
    """Times (keys ending in _s) may differ by 25 %; anything else must be equal; missing keys differ."""
    ref = {"states": ["checking", "connected"], "failed after_s": 15.0}
    assert compare(ref, {"states": ["checking", "connected"], "failed after_s": 18.5}) == []
    assert compare(ref, {"states": ["checking", "connected"], "failed after_s": 19.0}) == ["failed after_s"]
    assert compare(ref, {"states": ["checking", "completed"], "failed after_s": 15.0}) == ["states"]
    assert compare(ref, {"states": ["checking", "connected"], "failed after_s": None}) == ["failed after_s"]
    assert compare(ref, {"states": ["checking", "connected"]}) == ["failed after_s"]


def test_verdict_mismatch_unless_documented():
    """A difference with no documented reason is a mismatch; with one, a documented difference."""
    sc = SCENARIOS["RTCPeerConnection-addIceCandidate/before-remote-description"]
    assert sc.difference is None
    assert verdict(sc, {"addIceCandidate": ["InvalidStateError"]}, {"addIceCandidate": ["InvalidStateError"]}) == MATCH
    assert verdict(sc, {"addIceCandidate": ["InvalidStateError"]}, {"addIceCandidate": ["ok"]}) == MISMATCH
    documented = Scenario(**{**sc.__dict__, "difference": "because"})
    assert verdict(documented, {"addIceCandidate": ["InvalidStateError"]}, {"addIceCandidate": ["ok"]}) == DOCUMENTED


# --- Peer on the simulated network (always) -------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> dict[str, dict[str, Any]]:
    """Every scenario's essentials on Peer in the simulated network (run once)."""
    return cli.sim_essentials(ALL)


@pytest.mark.parametrize("name", [sc.name for sc in ALL])
def test_peer_in_sim_matches_chromium_or_differs_as_documented(sim, name):
    """Peer's essentials equal Chromium's, or the scenario documents why not; never an unexplained mismatch."""
    sc = SCENARIOS[name]
    reference = _stored(name)
    got = sim[name]
    v = verdict(sc, reference, got)
    assert v in (MATCH, DOCUMENTED), (
        f"{name}: undocumented difference from Chromium on {compare(reference, got)}\n"
        f"Chromium: {reference}\nrtclab:   {got}"
    )


def test_sim_runs_repeat(sim):
    """The simulated side is deterministic: a second run gives the same essentials."""
    some = [SCENARIOS[n] for n in ("RTCPeerConnection-iceConnectionState/path-cut", "RTCPeerConnection-onnegotiationneeded/callee-addTrack-after-answer")]
    again = cli.sim_essentials(some)
    assert again == {sc.name: sim[sc.name] for sc in some}


def test_selected_cases_peer_passes(sim):
    """The count the README reports: how many scenarios Peer passes (match) next to Chromium's."""
    counts = table.summary(ALL, {k: v["essentials"] for k, v in STORED["scenarios"].items()}, sim, {})
    assert counts["sim"][MISMATCH] == 0
    assert counts["sim"][MATCH] + counts["sim"][DOCUMENTED] == len(ALL)
    print(f"Peer (sim) passes {counts['sim'][MATCH]}/{len(ALL)} selected cases; Chromium {len(ALL)}/{len(ALL)}")


# --- the README --------------------------------------------------------------------------------


def test_readme_table_is_generated(sim, monkeypatch):
    """README.md holds exactly the table generated from the stored results and a fresh simulated run."""
    monkeypatch.setattr(cli, "sim_essentials", lambda items: {sc.name: sim[sc.name] for sc in items})
    have = table.readme_section(ROOT / "README.md")
    assert have is not None, f"README.md lacks {table.START} ... {table.END}"
    want = cli.expected_table()
    assert have == want, "README table is stale: run `python -m rtclab.conformance table` (or `table --stored`)"
    assert (results.chromium_dir() / "conformance-table.md").read_text() == want


def test_readme_update_round_trip(tmp_path):
    """update_readme replaces only the text between the markers."""
    p = tmp_path / "README.md"
    p.write_text(f"before\n{table.START}\nold\n{table.END}\nafter\n")
    assert table.update_readme(p, "| new |\n") is True
    assert p.read_text() == f"before\n{table.START}\n| new |\n{table.END}\nafter\n"
    assert table.readme_section(p) == "| new |\n"
    assert table.update_readme(p, "| new |\n") is False


# --- stored Chromium flow traces (no browser needed) ---------------------------------------------


@pytest.mark.parametrize("flow, side", results.FLOW_RUNS)
def test_chromium_flow_traces_are_stored(flow, side):
    """Each course flow with a browser side has a stored Chromium trace that connected, with the browser's rows."""
    frame = data.chromium_trace(f"{flow}-browser-{side}")
    meta = frame.attrs["meta"]
    assert meta["outcome"] == "connected" and meta["browser"] == side and meta["chromium"] == STORED["chromium"]
    states = frame[(frame.actor == side) & (frame.kind == "state") & (frame.name == "iceConnectionState")].value.tolist()
    assert states[:2] == ["checking", "connected"]  # Chromium's machine, not aiortc's "completed"
    assert f"{flow}-browser-{side}" in data.chromium_traces()


def test_chromium_trace_unknown_name():
    """An unknown name is a KeyError listing what exists."""
    with pytest.raises(KeyError, match="basic-browser-caller"):
        data.chromium_trace("no-such-trace")


# --- Chromium afresh (root + Chromium + Playwright) --------------------------------------------------


@pytest.fixture(scope="module")
def chromium(tmp_path_factory) -> dict[str, Any]:
    """Every scenario run once in Chromium (side by side in one page, in a loopback-only namespace),
    and at the same time on Peer on the real network (UDP on the namespace's loopback)."""
    reason = browser.availability()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("conformance")
    proc = runner.run_isolated(["_run", "--loopback", "--chromium", "--real", "--out", str(out)], timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"the Chromium run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    frames = {p.stem.replace("__", "/"): load(p) for p in (out / "chromium").glob("*.csv")}
    real = {p.stem.replace("__", "/"): load(p) for p in (out / "real").glob("*.csv")}
    return {"frames": frames, "real": real, "meta": json.loads((out / "meta.json").read_text())}


def test_chromium_version_is_the_recorded_one(chromium):
    """The stored references were made with this Chromium major version (else: record again)."""
    assert chromium["meta"]["version"].split(".")[0] == STORED["chromium"].split(".")[0]


@pytest.mark.parametrize("name", [sc.name for sc in ALL])
def test_chromium_still_does_what_is_stored(chromium, name):
    """A fresh Chromium run gives the stored essentials (times within ±25 %)."""
    sc = SCENARIOS[name]
    frame = chromium["frames"].get(name)
    assert frame is not None, f"{name} did not run"
    assert not ((frame.actor == "network") & (frame.kind == "error")).any(), frame[frame.kind == "error"].to_string()
    fresh = json.loads(json.dumps(sc.essentials(frame), default=str))
    reference = _stored(name)
    assert compare(reference, fresh) == [], f"{name}: stored {reference}\nfresh  {fresh}"


@pytest.mark.parametrize("name", [sc.name for sc in ALL])
def test_peer_on_real_network_matches_chromium_or_differs_as_documented(chromium, name):
    """On real UDP too, Peer matches Chromium or the scenario documents why not."""
    sc = SCENARIOS[name]
    frame = chromium["real"].get(name)
    assert frame is not None, f"{name} did not run on the real network"
    got = json.loads(json.dumps(sc.essentials(frame), default=str))
    reference = _stored(name)
    assert verdict(sc, reference, got) in (MATCH, DOCUMENTED), (
        f"{name}: undocumented difference from Chromium on {compare(reference, got)}\n"
        f"Chromium: {reference}\nrtclab:   {got}"
    )
