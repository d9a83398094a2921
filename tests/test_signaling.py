"""Tests of rtclab.signaling.Channel: seeded latency, jitter, loss, duplication, reordering.

The channel schedules deliveries on the event loop's clock; these tests run
it on a virtual-time loop (``foundation_virtual_run``) so delivery times are
exact and identical across runs, and no test waits for wall-clock time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import rtclab
from rtclab.signaling import Channel, SignalingError
from rtclab.trace import Trace


def signal_rows(trace: Trace, value: str | None = None) -> list[tuple]:
    """The ``signal`` rows (recording order), optionally of one value."""
    return [r for r in trace.rows if r[2] == "signal" and (value is None or r[4] == value)]


async def exchange(n: int = 12, **options: Any) -> tuple[Trace, list[int], list[tuple]]:
    """Send ``n`` numbered messages caller -> callee; return the trace, received numbers, signal rows."""
    trace = Trace()
    channel = Channel(trace, **options)
    got: list[int] = []
    channel.endpoint("callee").on_message(lambda m: got.append(m["n"]))
    try:
        for i in range(n):
            channel.endpoint("caller").send({"type": "new-ice-candidate", "n": i, "candidate": {"candidate": f"candidate:{i}"}})
            await asyncio.sleep(0.002)  # virtual time: 2 ms between sends
        await channel.drain(timeout=60)
        assert channel.in_flight == 0
    finally:
        await channel.close()
    return trace, got, [(r[0], r[1], r[4], r[6]) for r in signal_rows(trace)]


MESSY = dict(latency_ms=20, jitter_ms=30, reorder=0.3, loss=0.2, duplicate=0.2)


def test_same_seed_same_deliveries(foundation_virtual_run) -> None:
    """Two runs with one seed deliver the same messages in the same order at the same times."""
    first = foundation_virtual_run(exchange(seed=7, **MESSY))
    second = foundation_virtual_run(exchange(seed=7, **MESSY))
    other = foundation_virtual_run(exchange(seed=8, **MESSY))
    assert first[1] == second[1]
    assert first[2] == second[2]
    assert other[2] != first[2]
    values = {v for _t, _a, v, _r in first[2]}
    assert {"sent", "delivered", "dropped"} <= values  # the seed exercises loss too


def test_reordering_happens_with_reorder_and_jitter(foundation_virtual_run) -> None:
    """With reorder > 0 some seed delivers messages out of the order they were sent."""
    orders = [foundation_virtual_run(exchange(seed=s, latency_ms=10, jitter_ms=20, reorder=0.5))[1] for s in range(5)]
    for got in orders:
        assert sorted(got) == list(range(12))  # nothing lost, nothing doubled
    assert any(got != sorted(got) for got in orders)


@pytest.mark.parametrize("seed", range(5))
def test_fifo_without_reorder_even_with_jitter(seed: int, foundation_virtual_run) -> None:
    """With reorder=0 each direction is FIFO: jitter only delays, never reorders."""
    trace, got, _ = foundation_virtual_run(exchange(seed=seed, latency_ms=5, jitter_ms=50))
    assert got == list(range(12))
    times = [r[0] for r in signal_rows(trace, "delivered")]
    assert times == sorted(times)


def test_latency_delays_delivery(foundation_virtual_run) -> None:
    """Each message is delivered latency_ms after it was sent (no jitter), with the sender's ref."""
    _trace, _got, sig = foundation_virtual_run(exchange(n=3, seed=1, latency_ms=40))
    sent = [(t, ref) for t, a, v, ref in sig if v == "sent"]
    delivered = [(t, ref) for t, a, v, ref in sig if v == "delivered"]
    assert [ref for _t, ref in sent] == [ref for _t, ref in delivered]
    assert [round(d - s, 3) for (s, _), (d, _) in zip(sent, delivered)] == [40.0, 40.0, 40.0]
    assert {a for _t, a, v, _r in sig if v == "sent"} == {"caller"}
    assert {a for _t, a, v, _r in sig if v == "delivered"} == {"callee"}


def test_loss_one_drops_everything(foundation_virtual_run) -> None:
    """loss=1 drops every message: a dropped row (actor channel) per message and no delivery."""
    trace, got, sig = foundation_virtual_run(exchange(n=5, seed=3, loss=1.0))
    assert got == []
    dropped = signal_rows(trace, "dropped")
    assert len(dropped) == 5 and {r[1] for r in dropped} == {"channel"}
    assert {r[7] for r in dropped} == {"lost"}
    assert [r[6] for r in dropped] == [r[6] for r in signal_rows(trace, "sent")]
    assert signal_rows(trace, "delivered") == []


def test_duplicate_one_delivers_twice_with_the_same_ref(foundation_virtual_run) -> None:
    """duplicate=1 delivers each message twice; both deliveries carry the sent row's ref."""
    trace, got, _ = foundation_virtual_run(exchange(n=4, seed=5, duplicate=1.0))
    assert sorted(got) == sorted(list(range(4)) * 2)
    sent = [r[6] for r in signal_rows(trace, "sent")]
    delivered = [r[6] for r in signal_rows(trace, "delivered")]
    assert len(set(sent)) == 4
    assert sorted(delivered) == sorted(sent * 2)


def test_refs_link_candidates_and_messages(foundation_virtual_run) -> None:
    """A candidate message takes the candidate's ref (or owner:end); other messages get m1, m2..."""

    async def main() -> Trace:
        trace = Trace()
        line = "candidate:1 1 udp 2130706431 192.0.2.2 50000 typ host"
        ref = trace.candidate_ref("caller", line, create=True)
        channel = Channel(trace, latency_ms=1)
        channel.endpoint("callee").on_message(lambda m: None)
        try:
            assert channel.endpoint("caller").send({"type": "video-offer", "sdp": {"type": "offer", "sdp": "v=0"}}) == "m1"
            assert channel.endpoint("caller").send({"type": "new-ice-candidate", "candidate": {"candidate": line}}) == ref
            assert channel.endpoint("caller").send({"type": "new-ice-candidate", "candidate": None}) == "caller:end"
            await channel.drain()
        finally:
            await channel.close()
        return trace

    trace = foundation_virtual_run(main())
    assert [r[6] for r in signal_rows(trace, "delivered")] == ["m1", "caller:c1", "caller:end"]
    assert signal_rows(trace, "sent")[2][7] == "end-of-candidates"


@pytest.mark.parametrize(
    "message, text",
    [
        ({"type": "video-offer", "sdp": "x" * 200}, "message too big"),
        (["not", "a", "dict"], "JSON object"),
        ("hang-up", "JSON object"),
        ({"sdp": "no type"}, "string 'type'"),
        ({"type": ""}, "string 'type'"),
        ({"type": "hang-up", "when": object()}, "not JSON-serializable"),
    ],
    ids=["oversized", "list", "string", "no type", "empty type", "not JSON"],
)
def test_refused_messages(message: Any, text: str, foundation_virtual_run) -> None:
    """A message that is too big, not an object, untyped or not JSON raises SignalingError and is recorded as refused."""

    async def main() -> Trace:
        trace = Trace()
        channel = Channel(trace, max_message_bytes=100)
        got: list[Any] = []
        channel.endpoint("callee").on_message(got.append)
        try:
            with pytest.raises(SignalingError, match=text):
                channel.endpoint("caller").send(message)
            await channel.drain()
            assert got == [] and channel.in_flight == 0
        finally:
            await channel.close()
        return trace

    trace = foundation_virtual_run(main())
    assert [r[4] for r in signal_rows(trace)] == ["refused"]
    errors = [r for r in trace.rows if r[2] == "error"]
    assert [(r[1], r[3], r[4]) for r in errors] == [("channel", "signaling", "SignalingError")]
    assert text in errors[0][7]
    assert issubclass(SignalingError, ValueError) and rtclab.SignalingError is SignalingError


def test_handler_exceptions_become_error_rows(foundation_virtual_run) -> None:
    """Sync and async handler exceptions are error rows of the receiver; later messages still arrive."""

    async def main() -> tuple[Trace, list[str]]:
        trace = Trace()
        channel = Channel(trace, latency_ms=5)
        got: list[str] = []

        def sync_handler(m: dict[str, Any]) -> None:
            got.append(m["type"])
            if m["type"] == "video-offer":
                raise KeyError("sdp")

        async def async_handler(m: dict[str, Any]) -> None:
            await asyncio.sleep(0.001)
            raise RuntimeError(f"cannot handle {m['type']}")

        channel.endpoint("callee").on_message(sync_handler)
        channel.endpoint("caller").on_message(async_handler)
        try:
            channel.endpoint("caller").send({"type": "video-offer"})
            channel.endpoint("caller").send({"type": "hang-up"})
            channel.endpoint("callee").send({"type": "video-answer"})
            await channel.drain()
        finally:
            await channel.close()
        return trace, got

    trace, got = foundation_virtual_run(main())
    assert got == ["video-offer", "hang-up"]
    errors = sorted((r[1], r[3], r[4], r[7]) for r in trace.rows if r[2] == "error")
    here = Path(__file__).resolve()
    source = here.read_text().splitlines()
    raise_sdp = source.index('                raise KeyError("sdp")') + 1
    raise_rt = source.index('            raise RuntimeError(f"cannot handle {m[\'type\']}")') + 1
    # each detail ends with the handler's own line (the app's code, see rtclab.tracebacks)
    assert errors == [
        ("callee", "onmessage", "KeyError", f"'sdp' (at {here}:{raise_sdp}, in sync_handler)"),
        ("caller", "onmessage", "RuntimeError", f"cannot handle video-answer (at {here}:{raise_rt}, in async_handler)"),
    ]


def test_message_without_listener_is_recorded(foundation_virtual_run) -> None:
    """A delivery to an app with no handler is recorded as a NoHandler error row."""

    async def main() -> Trace:
        trace = Trace()
        channel = Channel(trace, latency_ms=5)
        try:
            channel.endpoint("caller").send({"type": "hang-up"})
            await channel.drain()
        finally:
            await channel.close()
        return trace

    trace = foundation_virtual_run(main())
    assert [(r[1], r[3], r[4]) for r in trace.rows if r[2] == "error"] == [("callee", "onmessage", "NoHandler")]


def test_close_cancels_in_flight(foundation_virtual_run) -> None:
    """close() drops scheduled deliveries and cancels running handlers; later sends are dropped."""

    async def main() -> tuple[Trace, list[str], list[str]]:
        trace = Trace()
        channel = Channel(trace, latency_ms=1)
        got: list[str] = []
        cancelled: list[str] = []

        async def slow(m: dict[str, Any]) -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(m["type"])
                raise

        channel.endpoint("callee").on_message(lambda m: got.append(m["type"]))
        channel.endpoint("caller").on_message(slow)
        channel.endpoint("callee").send({"type": "hang-up"})
        await asyncio.sleep(0.01)  # virtual time: delivered, its handler is running
        channel.latency_ms = 1000
        channel.endpoint("caller").send({"type": "video-offer"})
        assert channel.in_flight == 2  # one scheduled delivery, one running handler
        await channel.close()
        assert channel.in_flight == 0
        await asyncio.sleep(5)  # virtual time: long after every due time
        channel.endpoint("caller").send({"type": "hang-up"})
        return trace, got, cancelled

    trace, got, cancelled = foundation_virtual_run(main())
    assert got == []
    assert cancelled == ["hang-up"]
    delivered = [r[3] for r in signal_rows(trace, "delivered")]
    assert delivered == ["hang-up"]
    last = signal_rows(trace)[-1]
    assert (last[1], last[4], last[7]) == ("channel", "dropped", "channel closed")


@pytest.mark.parametrize(
    "options",
    [{"loss": 1.5}, {"duplicate": -0.1}, {"reorder": 2}, {"latency_ms": -1}, {"jitter_ms": -5}],
)
def test_bad_parameters_raise_value_error(options: dict[str, Any]) -> None:
    """Probabilities outside [0, 1] and negative delays are rejected with ValueError."""
    with pytest.raises(ValueError, match="probability|>= 0"):
        Channel(Trace(clock=lambda: 0.0), **options)
