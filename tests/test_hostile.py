"""Hostile input: malformed descriptions, candidates and signaling messages never crash or hang.

Property-based (hypothesis, derandomized: the same examples on every run). Peers
are driven on the simulated network (``run_sim``: virtual time, no sockets), so
every await is bounded by a virtual timeout and a hang shows up as a failure in
well under a second of wall time. Each bad input must end as the browser's
error type (``TypeError``, ``OperationError``, ``InvalidStateError``,
``InvalidAccessError``) with an ``error`` row, or, for the channel, as a
``refused`` row and a :class:`SignalingError`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _reliability
import rtclab
from rtclab.flows import FLOWS, Flow
from rtclab.network import SimNetwork, patches_installed, run_sim
from rtclab.peer import DOMException, Peer, error_name
from rtclab.signaling import MESSAGE_TYPES, Channel, SignalingError
from rtclab.trace import Trace

#: examples per property; ``RTCLAB_HOSTILE_EXAMPLES=1000`` for a deep (still deterministic) fuzz
EXAMPLES = int(os.environ.get("RTCLAB_HOSTILE_EXAMPLES", "60"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
BROWSER_ERRORS = {"TypeError", "OperationError", "InvalidStateError", "InvalidAccessError"}
#: error rows an app run may hold besides browser errors: the app's own
#: "unknown message" log, the channel's refusals, and the deadline.
# NotSupportedError: rtclab's documented restartIce() limit on a never-connected call (relay-until-accepted
# without a TURN server; README "Known limits"), recorded once instead of renegotiating forever
APP_ROW_VALUES = BROWSER_ERRORS | {"UnknownMessage", "SignalingError", "NoHandler", "timeout", "NotSupportedError"}
OUTCOMES = _reliability.OUTCOMES
STEP_S = 10.0  # virtual seconds any single API call may take before it counts as a hang
HARNESS_S = 60.0  # wall seconds a whole run may take before it counts as a hang

TRIED: dict[str, int] = {"descriptions": 0, "candidates": 0, "messages": 0, "flow-runs": 0}


def sim(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` on a fresh simulated LAN (virtual time, no real sockets)."""
    return run_sim(main, SimNetwork(topology="lan", stun=False, turn=False, seed=0))


async def bounded(aw: Awaitable[Any]) -> Any:
    """Await ``aw`` with the per-call virtual bound; a hang fails the test."""
    try:
        return await asyncio.wait_for(aw, STEP_S)
    except asyncio.TimeoutError:
        raise AssertionError(f"hang: call did not finish within {STEP_S} virtual seconds") from None


async def outcome_of(trace: Trace, actor: str, name: str, aw: Awaitable[Any]) -> str:
    """``"ok"`` or the browser error name of one API call; checks the error row it left."""
    before = len(trace.rows)
    try:
        await bounded(aw)
    except Exception as exc:  # noqa: BLE001 - classified below
        kind = error_name(exc)
        assert kind in BROWSER_ERRORS, f"{name} raised a non-browser error {kind}: {exc!r}"
        assert isinstance(exc, (DOMException, TypeError))
        new = trace.rows[before:]
        errors = [r for r in new if r[1] == actor and r[2] == "error" and r[3] == name]
        assert errors, f"{name} raised {kind} without an error row"
        assert errors[-1][4] == kind and errors[-1][7], errors[-1]  # the type, and a message
        return kind
    return "ok"


SESSION_ONLY_SDP = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def data_only_sdp() -> str:
    """The real offer without its video section: valid, but with no media to put a camera on."""
    head, *sections = offer_sdp().split("m=")
    data = [sec for sec in sections if sec.startswith("application")][0]
    return (head + "m=" + data).replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 1")


@functools.lru_cache(maxsize=1)
def offer_sdp() -> str:
    """A real offer (video + data channel) from a Peer, as an app would send it."""

    async def main() -> str:
        pc = Peer("caller", Trace())
        try:
            pc.addTransceiver("video")
            pc.createDataChannel("chat")
            return (await pc.createOffer())["sdp"]
        finally:
            await pc.close()

    return sim(main)


# --- strategies -----------------------------------------------------------------------------

JUNK_TEXT = st.text(max_size=80) | st.sampled_from(["", "\x00", "v=0", "m=", "\ud800", "é€😀", "a=" * 40, " " * 10])
HUGE = st.integers(min_value=1, max_value=3).map(lambda k: "v=0\r\n" + "a=x:" + "y" * (300_000 * k))


@st.composite
def broken_sdps(draw: st.DrawFn) -> str:
    """A valid-looking SDP with one or two damaging edits (m-lines especially)."""
    lines = offer_sdp().split("\r\n")
    for _ in range(draw(st.integers(1, 2))):
        m_lines = [i for i, line in enumerate(lines) if line.startswith("m=")] or [0]
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        op = draw(st.sampled_from(["drop", "junk", "m-line", "m-fields", "truncate", "dup-m", "nul", "mid", "rtpmap", "attr"]))
        if op == "drop":
            del lines[i : i + 1]
        elif op == "junk":
            lines[i] = draw(JUNK_TEXT)
        elif op == "m-line":
            lines[draw(st.sampled_from(m_lines))] = "m=" + draw(st.text(max_size=40))
        elif op == "m-fields":
            j = draw(st.sampled_from(m_lines))
            parts = lines[j].split(" ") if j < len(lines) else ["m=video"]
            k = draw(st.integers(0, max(0, len(parts) - 1)))
            parts[k] = draw(st.sampled_from(["", "-1", "70000", "abc", "9/2", "UDP", "0", "m=", "\x00"]) | st.text(max_size=8))
            if draw(st.booleans()):
                parts = parts[: draw(st.integers(0, len(parts)))]
            if j < len(lines):
                lines[j] = " ".join(parts)
        elif op == "truncate":
            text = "\r\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split("\r\n")
        elif op == "dup-m":
            j = draw(st.sampled_from(m_lines))
            lines = lines + lines[j:]
        elif op == "nul" and lines:
            lines[i] = lines[i][: len(lines[i]) // 2] + "\x00" + lines[i][len(lines[i]) // 2 :]
        elif op == "mid":
            lines = [f"a=mid:{draw(st.text(max_size=6))}" if line.startswith("a=mid:") else line for line in lines]
        elif op == "rtpmap":
            lines = [line.split(" ")[0] + " " + draw(st.text(max_size=12)) if line.startswith("a=rtpmap:") else line for line in lines]
        elif op == "attr":
            key = draw(st.sampled_from(["a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:", "a=setup:", "a=group:BUNDLE", "a=sctp-port:", "a=ssrc:", "c=IN IP4 "]))
            lines = [key + draw(st.text(max_size=20)) if line.startswith(key) else line for line in lines]
    return "\r\n".join(lines)


SDP_TYPES = st.sampled_from(["offer", "answer", "pranswer", "rollback"])
ANY_VALUE = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | JUNK_TEXT | st.binary(max_size=8) | st.lists(st.integers(), max_size=3)
DESCRIPTIONS = st.one_of(
    ANY_VALUE,  # not a dict at all
    st.dictionaries(st.text(max_size=6), ANY_VALUE, max_size=3),  # missing fields
    st.fixed_dictionaries({"type": ANY_VALUE, "sdp": st.just("") | broken_sdps()}),  # wrong type
    st.fixed_dictionaries({"type": SDP_TYPES, "sdp": ANY_VALUE}),  # wrong sdp type
    st.fixed_dictionaries({"type": SDP_TYPES}),  # no sdp
    st.fixed_dictionaries({"type": SDP_TYPES, "sdp": JUNK_TEXT | HUGE}),
    st.fixed_dictionaries({"type": SDP_TYPES, "sdp": broken_sdps()}),
    st.fixed_dictionaries({"type": SDP_TYPES, "sdp": broken_sdps()}),
)

ADDRESSES = st.sampled_from([
    "192.168.1.10", "1.2.3.4", "0.0.0.0", "255.255.255.255", "999.1.1.1", "1.2.3", "::1", "fe80::1%eth0",
    "::ffff:1.2.3.4", "[::1]", "gg::1", "2001:db8::1", "abc.local", "ABC.LOCAL", "5f2d-41.local", "example.com",
    "1.2.3.4.local", "x" * 300, "é.local", "\x00",
]) | st.text(min_size=1, max_size=20)
PORTS = st.integers(-100_000, 200_000) | st.sampled_from([0, 9, 65535, 65536, -1])
CANDIDATE_TEMPLATE = st.builds(
    lambda foundation, component, transport, priority, address, port, typ, ext, prefix: (
        f"{prefix}candidate:{foundation} {component} {transport} {priority} {address} {port} typ {typ}{ext}"
    ),
    foundation=st.sampled_from(["1", "abc+/", "", "x" * 40]) | st.text(max_size=6),
    component=st.integers(-5, 300),
    transport=st.sampled_from(["udp", "UDP", "tcp", "sctp", ""]),
    priority=st.integers(-(2**33), 2**33),
    address=ADDRESSES,
    port=PORTS,
    typ=st.sampled_from(["host", "srflx", "prflx", "relay", "bogus", ""]),
    ext=st.sampled_from(["", " raddr 0.0.0.0 rport 0", " raddr x rport y", " generation 0", " rport -1", " ufrag", " tcptype active"]),
    prefix=st.sampled_from(["", "a=", " ", "a=a="]),
)
CANDIDATE_LINES = CANDIDATE_TEMPLATE | JUNK_TEXT | st.just("candidate:1 1 udp 1 1.2.3.4 5 typ host" + " x y" * 400)
CANDIDATES = st.one_of(
    ANY_VALUE.filter(lambda v: v is not None),  # not a dict
    st.dictionaries(st.sampled_from(["candidate", "sdpMid", "sdpMLineIndex", "usernameFragment", "x"]), ANY_VALUE, max_size=4),
    st.fixed_dictionaries(
        {"candidate": CANDIDATE_LINES | ANY_VALUE},
        optional={
            "sdpMid": st.sampled_from(["0", "1", "2", "", "video"]) | ANY_VALUE,
            "sdpMLineIndex": st.integers(-3, 5) | ANY_VALUE,
        },
    ),
    st.fixed_dictionaries({"candidate": CANDIDATE_LINES, "sdpMid": st.just("0"), "sdpMLineIndex": st.just(0)}),
)


# --- Peer: descriptions ------------------------------------------------------------------------


@SETTINGS
@given(desc=DESCRIPTIONS, remote=st.booleans(), stage=st.sampled_from(["stable", "have-local-offer"]))
def test_hostile_descriptions_become_browser_errors(desc: Any, remote: bool, stage: str) -> None:
    """A malformed description in set{Remote,Local}Description is a browser error with a row, or works; never a crash or hang."""
    TRIED["descriptions"] += 1

    async def main() -> None:
        trace = Trace()
        pc = Peer("callee", trace)
        try:
            if stage == "have-local-offer":
                pc.addTransceiver("video")
                await bounded(pc.setLocalDescription(await bounded(pc.createOffer())))
            name = "setRemoteDescription" if remote else "setLocalDescription"
            call = pc.setRemoteDescription(desc) if remote else pc.setLocalDescription(desc)
            result = await outcome_of(trace, "callee", name, call)
            if result == "ok" and pc.signalingState == "have-remote-offer":
                # an accepted (odd) offer must also be answerable or fail like a browser
                answer = await outcome_of(trace, "callee", "createAnswer", pc.createAnswer())
                if answer == "ok":
                    await outcome_of(trace, "callee", "setLocalDescription", pc.setLocalDescription())
            # the operations chain is not wedged: the next call still completes
            await outcome_of(trace, "callee", "createOffer", pc.createOffer())
        finally:
            await bounded(pc.close())
        assert pc.signalingState == "closed"

    sim(main)
    assert not patches_installed()


# --- Peer: candidates ---------------------------------------------------------------------------


@SETTINGS
@given(batch=st.lists(CANDIDATES, min_size=1, max_size=8), with_remote=st.booleans())
def test_hostile_candidates_become_browser_errors(batch: list[Any], with_remote: bool) -> None:
    """Malformed candidates are TypeError / OperationError / InvalidStateError with rows; the peer keeps working."""
    TRIED["candidates"] += len(batch)

    async def main() -> None:
        trace = Trace()
        caller, callee = Peer("caller", trace), Peer("callee", trace)
        try:
            caller.addTransceiver("video")
            offer = await bounded(caller.createOffer())
            if with_remote:
                await bounded(callee.setRemoteDescription(offer))
            for cand in batch:
                result = await outcome_of(trace, "callee", "addIceCandidate", callee.addIceCandidate(cand))
                if not with_remote and cand is not None and result == "ok":
                    raise AssertionError(f"candidate {cand!r} added without a remote description")
                if isinstance(cand, dict) and isinstance(cand.get("candidate"), str) and cand.get("candidate"):
                    line = cand["candidate"]
                    if ".local" in line.lower() and result == "ok":
                        raise AssertionError(f"mDNS candidate accepted: {line!r}")
            # a non-dict is still refused at once, and a good candidate still goes through the chain
            assert await outcome_of(trace, "callee", "addIceCandidate", callee.addIceCandidate(42)) == "TypeError"
            good = {"candidate": "candidate:1 1 udp 2130706431 192.168.1.10 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
            result = await outcome_of(trace, "callee", "addIceCandidate", callee.addIceCandidate(good))
            assert result in ({"ok", "OperationError"} if with_remote else {"InvalidStateError"})  # (after end-of-candidates)
        finally:
            await bounded(caller.close())
            await bounded(callee.close())
        rejected = [r for r in trace.rows if r[2] == "ice" and r[3] == "candidate" and r[4] == "rejected"]
        errors = [r for r in trace.rows if r[2] == "error" and r[3] == "addIceCandidate"]
        assert len(rejected) == len(errors)  # each refused candidate has its fate and its error

    sim(main)


@pytest.mark.parametrize(
    ("candidate", "error", "text"),
    [
        ({"candidate": "candidate:1 1 udp 1 abc.local 5000 typ host", "sdpMid": "0"}, "OperationError", "mDNS"),
        ({"candidate": "candidate:1 1 udp 1 1.2.3.4 -5 typ host", "sdpMid": "0"}, "OperationError", "cannot parse"),
        ({"candidate": "candidate:1 1 udp 1 1.2.3.4 70000 typ host", "sdpMid": "0"}, "OperationError", "out of range"),
        ({"candidate": "candidate:1 1 udp 1 gg::1 5000 typ host", "sdpMid": "0"}, "OperationError", "not an IP address"),
        ({"candidate": "candidate:1 1 udp 1 1.2.3.4 5000 typ host " + "x y " * 400, "sdpMid": "0"}, "OperationError", "too long"),
        ({"candidate": "candidate:1 1 udp 1 1.2.3.4\x00 5000 typ host", "sdpMid": "0"}, "OperationError", "not an IP address"),
        ({"candidate": "candidate:1 1 udp 1 1.2.3.4 5000 typ host"}, "TypeError", "sdpMid and sdpMLineIndex"),
        ({"candidate": "candidate:1 1 udp 1 1.2.3.4 5000 typ host", "sdpMid": "7"}, "OperationError", "no media section"),
        ({"candidate": 5, "sdpMid": "0"}, "TypeError", "must be a string"),
        ({"candidate": ["x"], "sdpMid": "0"}, "TypeError", "must be a string"),
        ({"candidate": 0, "sdpMid": "0"}, "TypeError", "must be a string"),  # regression: was end-of-candidates
        ({"candidate": False, "sdpMid": "0"}, "TypeError", "must be a string"),
        ("candidate:1 1 udp 1 1.2.3.4 5000 typ host", "TypeError", "must be a dict"),
    ],
)
def test_named_hostile_candidates(candidate: Any, error: str, text: str) -> None:
    """Each classic bad candidate (.local, negative or huge port, IPv6 garbage, NUL, huge) has its error and message."""

    async def main() -> None:
        trace = Trace()
        caller, callee = Peer("caller", trace), Peer("callee", trace)
        try:
            caller.addTransceiver("video")
            await bounded(callee.setRemoteDescription(await bounded(caller.createOffer())))
            assert await outcome_of(trace, "callee", "addIceCandidate", callee.addIceCandidate(candidate)) == error
            row = [r for r in trace.rows if r[2] == "error" and r[3] == "addIceCandidate"][-1]
            assert text in row[7]
        finally:
            await bounded(caller.close())
            await bounded(callee.close())

    sim(main)


# --- the channel ---------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
NOT_JSON = st.sampled_from([b"bytes", {1, 2}, object(), (1j), Ellipsis]) | st.builds(lambda: {(1, 2): 3})


def _deep(n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        out = [out]
    return out


MESSAGES = st.one_of(
    JSON_VALUES.filter(lambda v: not isinstance(v, dict)),  # not an object
    NOT_JSON,
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4),  # type missing (mostly)
    st.fixed_dictionaries({"type": st.none() | st.integers() | st.just("") | st.lists(st.text(), max_size=2)}),
    st.fixed_dictionaries({"type": st.sampled_from(MESSAGE_TYPES) | st.text(min_size=1, max_size=30)},
                          optional={"sdp": JSON_VALUES, "candidate": JSON_VALUES, "target": JSON_VALUES}),
    st.fixed_dictionaries({"type": st.sampled_from(MESSAGE_TYPES), "x": NOT_JSON}),
    st.fixed_dictionaries({"type": st.sampled_from(MESSAGE_TYPES), "sdp": st.integers(60_000, 200_000).map(lambda n: "v" * n)}),
    st.builds(lambda n: {"type": "video-offer", "sdp": _deep(n)}, st.sampled_from([10, 5_000, 100_000])),
)


@SETTINGS
@given(batch=st.lists(MESSAGES, min_size=1, max_size=10), seed=st.integers(0, 3))
def test_hostile_messages_refused_or_delivered_intact(batch: list[Any], seed: int) -> None:
    """Every message is either refused (refused + SignalingError rows, exception) or delivered as sent; the channel never breaks."""
    TRIED["messages"] += len(batch)

    async def main() -> None:
        trace = Trace()
        channel = Channel(trace, latency_ms=10, jitter_ms=40, reorder=0.5, duplicate=0.3, seed=seed)
        got: list[Any] = []
        channel.endpoint("callee").on_message(got.append)
        sent: list[Any] = []
        try:
            for msg in batch:
                before = len(trace.rows)
                try:
                    channel.endpoint("caller").send(msg)
                except SignalingError as exc:
                    new = trace.rows[before:]
                    assert [r[4] for r in new] == ["refused", "SignalingError"], new
                    assert str(exc) and new[1][7] == str(exc)
                    continue
                wire = json.dumps(msg)  # accepted: it was JSON and small enough
                assert len(wire.encode()) <= channel.max_message_bytes
                sent.append(json.loads(wire))
            await bounded(channel.drain(timeout=STEP_S))
            assert channel.in_flight == 0
            # delivered intact (order aside), duplicated at most once each
            for msg in got:
                assert msg in sent
            assert len(sent) <= len(got) <= 2 * len(sent)
        finally:
            await bounded(channel.close())

    sim(main)


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "video-offer", "sdp": "x" * 70_000}, "message too big"),
        ({"type": "new-ice-candidate", "candidate": _deep(100_000)}, "not JSON-serializable"),
        ({"type": "hang-up", "when": b"now"}, "not JSON-serializable"),
        ({"type": 3}, "string 'type'"),
        (["video-offer"], "must be a JSON object"),
        ("hang-up", "must be a JSON object"),
    ],
)
def test_named_hostile_messages_are_refused(message: Any, text: str, foundation_virtual_run) -> None:
    """Oversized, too deeply nested, binary, untyped and non-object messages are refused with a SignalingError."""

    async def main() -> None:
        trace = Trace()
        channel = Channel(trace)
        with pytest.raises(SignalingError, match=text):
            channel.endpoint("caller").send(message)
        assert [r[4] for r in trace.rows] == ["refused", "SignalingError"]
        await channel.close()

    foundation_virtual_run(main())


def test_hostile_handlers_cannot_break_the_channel(foundation_virtual_run) -> None:
    """Handlers that raise, hang or return junk become rows or are cancelled at close; other messages still arrive."""

    async def main() -> list[tuple]:
        trace = Trace()
        channel = Channel(trace, latency_ms=5)
        got: list[str] = []

        async def handler(msg: dict[str, Any]) -> None:
            got.append(msg["type"])
            if msg["type"] == "raise":
                raise ValueError("bad")
            if msg["type"] == "hang":
                await asyncio.Event().wait()
            if msg["type"] == "missing":
                msg["sdp"]["type"]

        channel.endpoint("callee").on_message(handler)
        for kind in ("raise", "hang", "missing", "hang-up"):
            channel.endpoint("caller").send({"type": kind})
        await asyncio.sleep(1.0)
        await bounded(channel.close())
        assert channel.in_flight == 0
        assert got == ["raise", "hang", "missing", "hang-up"]
        return [(r[1], r[3], r[4]) for r in trace.rows if r[2] == "error"]

    errors = foundation_virtual_run(main())
    assert ("callee", "onmessage", "ValueError") in errors
    assert len(errors) == 2


# --- flows: crafted messages delivered to running apps ---------------------------------------------

MESSAGE_TYPE_NAMES = st.sampled_from(MESSAGE_TYPES) | st.sampled_from(["", "VIDEO-OFFER", "rollback", "answer"]) | st.text(max_size=10)
JSON_DESCRIPTIONS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"type": st.sampled_from(["offer", "answer", "pranswer", "rollback", "x"]) | JSON_VALUES,
                           "sdp": broken_sdps() | JUNK_TEXT.filter(lambda s: "\ud800" not in s) | JSON_VALUES
                           | st.just(SESSION_ONLY_SDP) | st.builds(data_only_sdp)}),
)
JSON_CANDIDATES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"candidate": CANDIDATE_LINES.filter(lambda s: "\ud800" not in s) | JSON_VALUES},
                          optional={"sdpMid": st.sampled_from(["0", "1", "9"]) | JSON_VALUES,
                                    "sdpMLineIndex": st.integers(-2, 3) | JSON_VALUES}),
)
APP_MESSAGES = st.one_of(
    st.fixed_dictionaries({"type": MESSAGE_TYPE_NAMES}, optional={"sdp": JSON_DESCRIPTIONS, "candidate": JSON_CANDIDATES, "target": JSON_VALUES}),
    st.fixed_dictionaries({"type": st.just("video-offer") | st.just("video-answer"), "sdp": JSON_DESCRIPTIONS}),
    st.fixed_dictionaries({"type": st.just("new-ice-candidate"), "candidate": JSON_CANDIDATES}),
    st.just("replay"),  # re-send a real message of this side later: duplicated, out of order
)
#: (virtual ms after the app starts, side that sends, message)
INJECTIONS = st.lists(st.tuples(st.sampled_from([0, 5, 30, 80, 200, 1500]), st.sampled_from(["caller", "callee"]), APP_MESSAGES),
                      min_size=1, max_size=6)


def hostile_flow(flow: str, injections: list[tuple[int, str, Any]]) -> Flow:
    """``flow`` whose apps also send the crafted messages (at virtual times) to the other app."""
    spec = FLOWS[flow]

    def wrap(code: Any, actor: str) -> Any:
        async def app_code(app: Any) -> None:
            real_send = app.send
            history: list[dict[str, Any]] = []

            def send(message: dict[str, Any]) -> str:
                history.append(message)
                return real_send(message)

            app.send = send
            loop = asyncio.get_running_loop()

            def inject(message: Any) -> None:
                if message == "replay":
                    if not history:
                        return
                    message = history[0] if len(history) < 3 else history[len(history) // 2]
                try:
                    real_send(message)
                except SignalingError:
                    pass  # refused by the channel: that has its rows

            for at_ms, who, message in injections:
                if who == actor:
                    loop.call_later(at_ms / 1000.0, inject, message)
            await code(app)

        return app_code

    return Flow(f"hostile-{flow}", spec.summary, wrap(spec.caller, "caller"), wrap(spec.callee, "callee"), spec.media)


def bounded_run(flow: str, **params: Any) -> rtclab.Run:
    """``rtclab.run`` on the sim, failing (not hanging) past the harness bound; a raise is a crash."""
    try:
        return _reliability.bounded_run(flow, harness_s=HARNESS_S, **params)
    except _reliability.Hang:
        raise
    except BaseException as exc:  # noqa: BLE001
        raise AssertionError(f"crash: run({flow!r}) raised {exc!r}") from exc


def check_app_run(r: rtclab.Run) -> None:
    """The run ended with an outcome, and every error row is a browser-style error."""
    ev = r.events
    assert r.outcome in OUTCOMES, (r.outcome, r.reason)
    errors = ev[ev["kind"] == "error"]
    assert not (errors["name"] == "runner").any()
    bad = errors[~errors["value"].isin(APP_ROW_VALUES)]
    assert bad.empty, bad[["actor", "name", "value", "detail"]].to_string()
    assert (errors["detail"].str.len() > 0).all()


@pytest.fixture
def flows_restored() -> Any:
    """FLOWS as it was before the test."""
    saved = dict(FLOWS)
    yield FLOWS
    FLOWS.clear()
    FLOWS.update(saved)


@settings(SETTINGS, max_examples=max(45, EXAMPLES * 3 // 4))
@given(flow=st.sampled_from(sorted(rtclab.FLOWS)), injections=INJECTIONS, seed=st.integers(0, 5))
def test_flows_survive_crafted_messages(flow: str, injections: list[Any], seed: int) -> None:
    """Every flow's app handlers turn crafted messages into browser errors or ignore them; the run ends with an outcome."""
    TRIED["flow-runs"] += 1
    TRIED["messages"] += len(injections)
    saved = dict(FLOWS)
    try:
        spec = hostile_flow(flow, injections)
        FLOWS[spec.name] = spec
        r = bounded_run(spec.name, seed=seed, deadline_s=15, answer_delay_ms=100)
    finally:
        FLOWS.clear()
        FLOWS.update(saved)
    check_app_run(r)


BARRAGE = [
    (0, "caller", {"type": "new-ice-candidate", "candidate": {"candidate": "candidate:1 1 udp 1 abc.local 5 typ host", "sdpMid": "0"}}),
    (0, "caller", {"type": "video-offer"}),
    (5, "callee", {"type": "video-answer", "sdp": {"type": "answer", "sdp": "v=0\r\nm=video x"}}),
    (30, "caller", {"type": "new-ice-candidate", "candidate": {"candidate": "candidate:1 1 udp 1 gg::1 -1 typ host", "sdpMid": 0}}),
    (30, "caller", {"type": "new-ice-candidate", "candidate": "garbage"}),
    (80, "callee", {"type": "video-answer", "sdp": None}),
    (80, "caller", {"type": "surprise", "x": [1, 2]}),
    (200, "caller", "replay"),
    (200, "callee", "replay"),
    (1500, "caller", {"type": "video-offer", "sdp": {"type": "offer", "sdp": "v=0\r\n"}}),
    (1500, "callee", {"type": "hang-up"}),
]


@pytest.mark.parametrize("flow", sorted(rtclab.FLOWS))
def test_each_flow_survives_a_fixed_barrage(flow: str, flows_restored: Any) -> None:
    """A fixed barrage of bad, unknown, missing-field and replayed messages leaves every flow with an outcome and browser-style errors."""
    spec = hostile_flow(flow, BARRAGE)
    flows_restored[spec.name] = spec
    r = bounded_run(spec.name, seed=1, deadline_s=15, answer_delay_ms=100)
    check_app_run(r)
    assert (r.events["kind"] == "error").any()  # the barrage is noticed, not swallowed wholesale


@pytest.mark.parametrize("sdp", ["session-only", "data-only"])
@pytest.mark.parametrize("flow", sorted(rtclab.FLOWS))
def test_each_flow_survives_valid_descriptions_without_media(flow: str, sdp: str, flows_restored: Any) -> None:
    """A valid offer and answer with no video section (session only, or data channel only) end as browser errors, not Python ones."""
    text = SESSION_ONLY_SDP if sdp == "session-only" else data_only_sdp()
    injections = [
        (0, "caller", {"type": "video-offer", "sdp": {"type": "offer", "sdp": text}}),
        (0, "callee", {"type": "video-answer", "sdp": {"type": "answer", "sdp": text}}),
    ]
    spec = hostile_flow(flow, injections)
    flows_restored[spec.name] = spec
    check_app_run(bounded_run(spec.name, seed=1, deadline_s=15, answer_delay_ms=100))  # (counteroffer: was IndexError)


def teardown_module() -> None:
    """Print how many hostile inputs this module tried (visible with ``pytest -s``)."""
    print(f"\nhostile inputs tried: {TRIED}")
