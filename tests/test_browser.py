"""Tests of rtclab.browser: headless Chromium as one side of a call, and the emulation cross-check.

Each browser scenario runs once per module in a child process
(``python -m rtclab.browser ... --loopback``) inside a loopback-only network
namespace (``unshare -n``), so no packet leaves the machine; the child has a
hard timeout and its whole process group is killed on expiry. Where Chromium,
Playwright or namespaces are missing the tests skip, saying how to enable them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from rtclab import browser, plots  # noqa: E402
from rtclab.trace import load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 120.0


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _need_browser() -> None:
    reason = browser.availability()
    if reason:
        pytest.skip(reason)


def _child(args: list[str], out: Path) -> None:
    proc = browser.run_isolated([*args, "--loopback", "--out", str(out)], timeout=CHILD_TIMEOUT_S, cwd=str(ROOT))
    if proc.returncode != 0:
        raise AssertionError(f"browser child failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr[-4000:]}")


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The browser calls, each run once: name -> (frame, summary)."""
    _need_browser()
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    base = tmp_path_factory.mktemp("browser")
    # The mdn calls get a shorter deadline (8 s, not 15): they connect in about half a second
    # on loopback, and when the sample's racy glare branch leaves the re-offer unanswered
    # (accepted below) the call only ends at the deadline, with the same rows up to there.
    for name, args in (("browser-caller", ["run", "basic", "--browser", "caller"]),
                       ("browser-callee", ["run", "basic", "--browser", "callee"]),
                       ("counteroffer", ["run", "counteroffer", "--browser", "callee"]),
                       ("mdn-browser-caller", ["run", "mdn", "--browser", "caller", "--deadline", "8"]),
                       ("mdn-browser-callee", ["run", "mdn", "--browser", "callee", "--deadline", "8"])):
        _child(args, base / name)
        out[name] = (load(base / f"{name}.csv"), json.loads((base / f"{name}.json").read_text()))
    return out


@pytest.fixture(scope="module")
def cross(tmp_path_factory) -> dict[str, Any]:
    """The cross-check results: {"chromium": {...}, "peer": {...}}."""
    _need_browser()
    path = tmp_path_factory.mktemp("crosscheck") / "crosscheck.json"
    _child(["crosscheck"], path)
    return json.loads(path.read_text())


def _states(df, actor, name):
    return df[(df.actor == actor) & (df.kind == "state") & (df.name == name)].value.tolist()


def _browser_rows(df, actor):
    """Rows written by the page's recorder (the browser says {"iceServers":[]} when constructing)."""
    made = df[(df.actor == actor) & (df.name == "RTCPeerConnection")]
    return made.detail.str.startswith("{").all() and len(made) == 1


def test_availability_says_how_to_enable(monkeypatch):
    """Without Chromium the skip reason names what to install."""
    monkeypatch.setenv("RTCLAB_CHROMIUM", "/nonexistent/chromium")
    reason = browser.availability()
    assert reason is not None and "apt-get install chromium" in reason and "playwright" in reason.lower()


@pytest.mark.parametrize("name, browser_side", [("browser-caller", "caller"), ("browser-callee", "callee"),
                                                ("mdn-browser-caller", "caller"), ("mdn-browser-callee", "callee")])
def test_call_browser_and_aiortc(calls, name, browser_side):
    """A basic (or mdn) call between Chromium and Peer connects both ways, rows from both in one frame, and plots.sequence draws it."""
    df, summary = calls[name]
    py_side = "callee" if browser_side == "caller" else "caller"
    errors = df[df.kind == "error"]
    if name.startswith("mdn") and (len(errors) or summary["outcome"] != "connected"):
        # The MDN sample's glare branch is racy, in Chromium as in rtclab: when the callee's
        # re-offer reaches the caller while its setRemoteDescription(answer) is still pending,
        # the caller sees have-local-offer, its rollback then runs in stable and fails with
        # InvalidStateError, and the re-offer may go unanswered. Seen with Chromium on either
        # side. That is the only accepted error, and the only accepted way to fail.
        assert set(errors.actor) == {"caller"}, errors.to_string()
        assert set(errors.value) == {"InvalidStateError"}, errors.to_string()
        assert set(errors.name) <= {"setLocalDescription", "onmessage", "app"}, errors.to_string()
        assert errors.detail.str.contains("setLocalDescription").all(), errors.to_string()
        offer_in = df[(df.actor == "caller") & (df.name == "video-offer") & (df.value == "delivered")].t_ms.min()
        assert offer_in <= errors.t_ms.min()
        if summary["outcome"] != "connected":
            return
    else:
        assert summary["outcome"] == "connected", summary
        assert errors.empty, errors.to_string()
    assert _browser_rows(df, browser_side) and not _browser_rows(df, py_side)
    for side in ("caller", "callee"):
        assert _states(df, side, "connectionState")[:2] == ["connecting", "connected"]
        assert "first-frame" in set(df[df.actor == side].name)
    assert _states(df, browser_side, "iceConnectionState")[:2] == ["checking", "connected"]  # Chromium
    assert _states(df, py_side, "iceConnectionState")[:2] == ["checking", "connected"]  # Peer's browser profile
    assert df.t_ms.is_monotonic_increasing
    clicks = df[(df.kind == "user") & (df.value == "call")]
    assert clicks.detail.tolist() == ["caller"]
    assert plots.sequence(df) is not None and plots.states(df) is not None


def test_candidates_and_messages_link_across_browser_and_peer(calls):
    """Each candidate the browser gathers keeps its ref through the channel to Peer's addIceCandidate."""
    df, _ = calls["browser-caller"]
    gathered = df[(df.actor == "caller") & (df.kind == "ice") & (df.value == "gathered")]
    added = df[(df.actor == "callee") & (df.kind == "ice") & (df.value == "added")]
    assert len(gathered) >= 1 and set(gathered.ref) <= set(added.ref)
    assert "caller:end" in set(added.ref)  # the browser's null candidate became end-of-candidates
    sent = df[(df.kind == "signal") & (df.value == "sent")]
    delivered = df[(df.kind == "signal") & (df.value == "delivered")]
    assert set(sent.ref) == set(delivered.ref)


@pytest.mark.parametrize("name, browser_side", [("browser-caller", "caller"), ("browser-callee", "callee")])
def test_browser_clock_is_aligned(calls, name, browser_side):
    """The measured offset puts browser rows in causal order with the Python rows around them."""
    df, summary = calls[name]
    clock = summary["meta"]["browser_clock"]
    rtt = float(clock["rtt_ms"])
    assert rtt < 50
    assert df.iloc[0]["name"] == "clock-sync" and df.iloc[0]["actor"] == browser_side
    tol = rtt + 2.0  # the offset is known to within half a round trip; page timers are coarsened to 0.1 ms
    local = "setLocalDescription"
    first_sent = df[(df.actor == browser_side) & (df.kind == "signal") & (df.value == "sent")].t_ms.min()
    sld = df[(df.actor == browser_side) & (df.name == local) & (df.kind == "call")].t_ms.min()
    assert sld <= first_sent + tol  # the page sends its description after setting it
    delivered = df[(df.actor == browser_side) & (df.kind == "signal") & (df.value == "delivered")].t_ms.min()
    srd = df[(df.actor == browser_side) & (df.name == "setRemoteDescription") & (df.kind == "call")].t_ms.min()
    assert delivered <= srd + tol  # and applies a remote description after it arrived


def test_counteroffer_browser_callee(calls):
    """The page's counteroffer callee answers at once and sends its camera only after the user's Answer."""
    df, summary = calls["counteroffer"]
    assert summary["outcome"] == "connected", summary
    assert not (df.kind == "error").any(), df[df.kind == "error"].to_string()
    answer_sent = df[(df.actor == "callee") & (df.name == "video-answer") & (df.value == "sent")].t_ms.iloc[0]
    click = df[(df.kind == "user") & (df.name == "click") & (df.value == "answer")].t_ms.iloc[0]
    media_at_caller = df[(df.actor == "caller") & (df.name == "first-frame")].t_ms.iloc[0]
    assert answer_sent < click < media_at_caller
    assert df[(df.actor == "callee") & (df.name == "replaceTrack")].value.tolist() == ["ok"]
    # the caller (Peer) keeps its camera gated until the page's call-accepted arrives
    accepted = df[(df.actor == "caller") & (df.name == "call-accepted") & (df.value == "delivered")].t_ms.iloc[0]
    opened = df[(df.actor == "caller") & (df.name == "replaceTrack")]
    assert opened.detail.tolist() == ["none", "video"] and opened.t_ms.iloc[1] >= accepted


# --- the emulation cross-check: the same steps on Chromium and on Peer ---------------------------


def test_crosscheck_negotiationneeded_coalesced(cross):
    """Two addTrack calls in one go fire negotiationneeded once, in Chromium and in Peer."""
    assert cross["chromium"]["negotiationneeded_count"] == cross["peer"]["negotiationneeded_count"] == 1


def test_crosscheck_icecandidate_sequence_ends_with_null(cross):
    """The icecandidate events are candidates then exactly one null, and setLocalDescription's SDP carries none."""
    for side in ("chromium", "peer"):
        seq = cross[side]["icecandidate_sequence"]
        assert seq[-1] == "null" and seq.count("null") == 1 and seq[0] == "candidate", (side, seq)
        assert cross[side]["sld_candidates_in_sdp"] == 0


def test_crosscheck_early_addicecandidate_error(cross):
    """addIceCandidate before a remote description rejects with InvalidStateError and the same message."""
    chromium, peer = cross["chromium"]["early_add"], cross["peer"]["early_add"]
    assert chromium["name"] == peer["name"] == "InvalidStateError"
    assert chromium["message"] == peer["message"]


def test_crosscheck_implicit_rollback(cross):
    """A remote offer in have-local-offer succeeds (implicit rollback) and can be answered, in both."""
    for side in ("chromium", "peer"):
        r = cross[side]["implicit_rollback"]
        assert r["ok"] and r["before"] == "have-local-offer" and r["after"] == "have-remote-offer", (side, r)
        assert r["answer_after"] == "stable"


def test_crosscheck_operations_chain(cross):
    """addIceCandidate issued while setRemoteDescription is pending waits for it and succeeds, in both."""
    expected = ["setRemoteDescription:ok", "addIceCandidate:ok"]
    assert cross["chromium"]["operations_chain"] == cross["peer"]["operations_chain"] == expected


# --- the workshop: browser tabs on rtclab serve ------------------------------------------------------


@pytest.fixture(scope="module")
def tabs(tmp_path_factory) -> dict[str, Any]:
    """Three Chromium tabs on the MDN-protocol server with its bot, run once."""
    _need_browser()
    path = tmp_path_factory.mktemp("tabs") / "tabs.json"
    _child(["tabs"], path)
    return json.loads(path.read_text())


def test_tabs_call_the_bot_and_each_other(tabs):
    """Tabs from the server's page register (a taken name becomes alice1), call the bot and each other."""
    assert tabs["names"] == ["alice", "alice1", "bob"] and tabs["users"] == ["alice", "alice1", "bob", "bot"]
    assert tabs["bot_states"][:2] == ["connecting", "connected"] and tabs["bot_first_frame"]
    assert tabs["bob_alice1"] == ["connected", "connected"]
    assert tabs["alice_errors"] == []


def test_tab_cannot_send_as_another_user(tabs):
    """A page sending with another user's name is refused with an identity error; closing a tab hangs up its call."""
    (err,) = tabs["bob_errors"]
    assert err["error"] == "identity" and err["refused"] == "video-offer"
    assert tabs["bot_hung_up"] and tabs["bot_calls"] == 1


# --- the course UI in a real browser ---------------------------------------------------------------


def test_jupyterlab_callpanel_connects(tmp_path):
    """JupyterLab in Chromium: notebook 09 opened before running shows a picture of the panel (no widget reprs);
    then a CallPanel goes Call -> Answer -> Hang up on the simulated and on the real network (screenshots kept)."""
    _need_browser()
    pytest.importorskip("jupyterlab", reason="pip install jupyterlab to test the course UI")
    import os

    out = Path(os.environ.get("RTCLAB_ARTIFACTS", tmp_path)) / "jupyterlab"
    first = ROOT / "notebooks" / "09_playground.ipynb"
    proc = browser.run_isolated(["jupyterlab", "--loopback", "--out", str(out), "--first-open", str(first)],
                                timeout=360, cwd=str(ROOT))
    progress = out / "progress.json"
    assert proc.returncode == 0, (progress.read_text() if progress.exists() else "", proc.stderr[-3000:])
    result = json.loads((out / "result.json").read_text())
    assert result["step"] == "done"
    assert result["first_open"]["images"] == 1 and result["first_open"]["image_visible"], result
    assert not result["first_open"]["raw_repr"], result
    assert result["status"].startswith("connected"), result
    sim, real = result["sim"], result["real"]
    assert [s.split("…")[0].split(":")[0] for s in sim] == ["ringing", "connected", "hung up"], sim
    assert real[0].startswith("ringing") and real[1].startswith("in call: connected"), real
    assert real[2] == "hung up (connected)", real
    assert (out / "callpanel.png").stat().st_size > 10_000
    assert (out / "panel.png").stat().st_size > 5_000
