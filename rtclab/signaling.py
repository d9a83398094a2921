"""The signaling path between the two apps: asynchronous, seeded, recorded.

A :class:`Channel` stands for the MDN sample's WebSocket server: each app sends
JSON messages (``video-offer``, ``video-answer``, ``new-ice-candidate``,
``hang-up``) and receives the other app's messages later. Latency, jitter,
loss, duplication and reordering come from one seeded :class:`random.Random`,
so the same seed gives the same deliveries.

Every message is one ``signal`` row when sent (actor: the sender), one per
delivery (actor: the receiver; a duplicated message is delivered twice), and a
``dropped`` row (actor ``channel``) when lost. Rows of one message share a
``ref``: the candidate's ref (``caller:c1``, ``caller:end``) for
``new-ice-candidate``, otherwise ``m1``, ``m2``... A message that is not
JSON-serializable, has no string ``type`` or is larger than
``max_message_bytes`` is refused: a ``refused`` row, an ``error`` row and a
:class:`SignalingError` raised in the sender, like a WebSocket server closing
with "message too big".

Ordering: with ``reorder=0`` each direction is FIFO (a WebSocket over TCP), so
jitter only delays; ``reorder`` is the probability that a message is held back
by up to one extra latency+jitter and may be overtaken.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from .trace import Trace

__all__ = ["MESSAGE_TYPES", "Channel", "Endpoint", "Message", "SignalingError"]

MESSAGE_TYPES: tuple[str, ...] = ("video-offer", "video-answer", "new-ice-candidate", "hang-up")


class SignalingError(ValueError):
    """A message the signaling server refuses (not JSON, no type, too big)."""


class Message(dict):  # type: ignore[type-arg]
    """A delivered message: a dict whose missing fields read as ``None``.

    As in JavaScript, where ``msg.sdp`` is ``undefined`` when the field is
    absent: app code then fails where a browser app fails (e.g.
    ``setRemoteDescription(None)`` is a ``TypeError``) instead of with a
    Python ``KeyError``. Nested objects are messages too.
    """

    def __missing__(self, key: Any) -> None:
        return None


def _app_error(exc: BaseException) -> tuple[str, str]:
    """(browser-style error name, message) of an exception raised by an app's handler.

    The message ends with the app's line that raised (see :mod:`rtclab.tracebacks`).
    """
    from .tracebacks import with_location

    name, text = _app_error_text(exc)
    return name, with_location(text, exc)


def _app_error_text(exc: BaseException) -> tuple[str, str]:
    from .peer import error_name

    if isinstance(exc, AttributeError) and getattr(exc, "obj", 0) is None and getattr(exc, "name", None):
        # JavaScript: calling a method on null (e.g. a peer connection not created yet)
        return "TypeError", f"Cannot read properties of null (reading {exc.name!r}): {exc}"
    if isinstance(exc, IndexError):
        # JavaScript: list[i] past the end is undefined, and using it is a TypeError
        return "TypeError", f"Cannot read properties of undefined (IndexError: {exc})"
    return error_name(exc), str(exc) or error_name(exc)


class Endpoint:
    """One app's end of the channel: ``send`` and ``on_message``."""

    def __init__(self, channel: Channel, actor: str) -> None:
        self.channel = channel
        self.actor = actor
        self.handler: Callable[[dict[str, Any]], Any] | None = None

    def send(self, message: dict[str, Any]) -> str:
        """Send a message to the other app; returns its ref."""
        return self.channel._send(self.actor, message)

    def on_message(self, handler: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """Set the function called (sync or async) with each delivered message."""
        self.handler = handler
        return handler


class Channel:
    """Asynchronous signaling between ``caller`` and ``callee``.

    Parameters
    ----------
    trace
        Where ``signal`` rows go.
    latency_ms, jitter_ms
        One-way delay: ``latency_ms`` plus a uniform ``[0, jitter_ms]`` draw.
    loss, duplicate, reorder
        Probabilities per message of being dropped, delivered twice, or held
        back so later messages may overtake it.
    seed
        Seed of the channel's own random generator.
    max_message_bytes
        Larger messages are refused (default 64 KiB).

    Examples
    --------
    >>> import asyncio, rtclab
    >>> async def main():
    ...     tr = rtclab.Trace()
    ...     ch = rtclab.Channel(tr, latency_ms=5, seed=1)
    ...     got = []
    ...     ch.endpoint("callee").on_message(got.append)
    ...     ch.endpoint("caller").send({"type": "hang-up"})
    ...     await ch.drain()
    ...     return got
    >>> asyncio.run(main())
    [{'type': 'hang-up'}]
    """

    def __init__(
        self,
        trace: Trace,
        *,
        latency_ms: float = 20.0,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        seed: int = 0,
        max_message_bytes: int = 64 * 1024,
    ) -> None:
        for name, p in (("loss", loss), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must be >= 0")
        self.trace = trace
        self.latency_ms = float(latency_ms)
        self.jitter_ms = float(jitter_ms)
        self.loss = float(loss)
        self.duplicate = float(duplicate)
        self.reorder = float(reorder)
        self.max_message_bytes = int(max_message_bytes)
        self.rng = random.Random(seed)
        self._endpoints = {a: Endpoint(self, a) for a in ("caller", "callee")}
        self._last_due: dict[str, float] = {}
        # FIFO mode: timers with equal due times fire in heap order, not call
        # order, so each timer delivers the oldest queued message instead.
        self._fifo: dict[str, deque[tuple[str, str, dict[str, Any]]]] = {a: deque() for a in ("caller", "callee")}
        self._pending: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._scheduled = 0

    def endpoint(self, actor: str) -> Endpoint:
        """The endpoint of ``caller`` or ``callee``."""
        return self._endpoints[actor]

    def _ref(self, actor: str, message: dict[str, Any]) -> str:
        if message.get("type") == "new-ice-candidate":
            cand = message.get("candidate")
            line = cand.get("candidate") if isinstance(cand, dict) else None
            if not line:
                return f"{actor}:end"
            if isinstance(line, str):
                ref = self.trace.find_candidate_ref(line)
                if ref:
                    return ref
        return self.trace.next_id("m")

    def _send(self, sender: str, message: dict[str, Any]) -> str:
        receiver = "callee" if sender == "caller" else "caller"
        kind = message.get("type") if isinstance(message, dict) else None
        name = kind if isinstance(kind, str) and kind else "?"
        try:
            if not isinstance(message, dict):
                raise SignalingError(f"a signaling message must be a JSON object, not {type(message).__name__}")
            if not isinstance(kind, str) or not kind:
                raise SignalingError("a signaling message needs a string 'type'")
            payload = json.dumps(message)
            if len(payload.encode()) > self.max_message_bytes:
                raise SignalingError(
                    f"message too big: {len(payload.encode())} bytes > {self.max_message_bytes}"
                )
        except (TypeError, ValueError, RecursionError) as exc:  # (RecursionError: nested too deeply)
            err = exc if isinstance(exc, SignalingError) else SignalingError(f"not JSON-serializable: {exc}")
            ref = self.trace.next_id("m")
            self.trace.record("channel", "signal", name[:64], "refused", ref=ref, detail=str(err))
            self.trace.record("channel", "error", "signaling", "SignalingError", ref=ref, detail=str(err))
            raise err from None
        ref = self._ref(sender, message)
        self.trace.record(sender, "signal", name, "sent", ref=ref, detail=_summary(message))
        if self._closed:
            self.trace.record("channel", "signal", name, "dropped", ref=ref, detail="channel closed")
            return ref
        if self.rng.random() < self.loss:
            self.trace.record("channel", "signal", name, "dropped", ref=ref, detail="lost")
            return ref
        copies = 2 if self.rng.random() < self.duplicate else 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        for _ in range(copies):
            delay = (self.latency_ms + self.rng.uniform(0.0, self.jitter_ms)) / 1000.0
            due = now + delay
            held = self.rng.random() < self.reorder
            if held:
                due += (self.latency_ms + self.jitter_ms) / 1000.0 * self.rng.random()
            elif self.reorder == 0.0:
                due = max(due, self._last_due.get(receiver, 0.0))
                self._last_due[receiver] = due
            payload_copy = json.loads(payload, object_hook=Message)
            if self.reorder == 0.0:
                self._fifo[receiver].append((name, ref, payload_copy))
                handle = loop.call_at(due, self._deliver_next, receiver)
            else:
                handle = loop.call_at(due, self._deliver, receiver, name, ref, payload_copy)
            self._pending.add(handle)
            self._scheduled += 1
        return ref

    def _deliver_next(self, receiver: str) -> None:
        name, ref, message = self._fifo[receiver].popleft()
        self._deliver(receiver, name, ref, message)

    def _deliver(self, receiver: str, name: str, ref: str, message: dict[str, Any]) -> None:
        self._scheduled -= 1
        self._pending = {h for h in self._pending if not h.cancelled() and h.when() > asyncio.get_running_loop().time()}
        if self._closed:
            return
        self.trace.record(receiver, "signal", name, "delivered", ref=ref)
        handler = self._endpoints[receiver].handler
        if handler is None:
            self.trace.record(receiver, "error", "onmessage", "NoHandler", ref=ref, detail=f"{receiver} app not listening: {name} ignored")
            return
        try:
            result = handler(message)
        except Exception as exc:
            kind, text = _app_error(exc)
            self.trace.record(receiver, "error", "onmessage", kind, ref=ref, detail=text)
            return
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(self._guard(receiver, ref, result))
            task.add_done_callback(lambda _t, c=result: c.close())  # never started (cancelled first): no "never awaited" warning
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _guard(self, receiver: str, ref: str, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kind, text = _app_error(exc)
            self.trace.record(receiver, "error", "onmessage", kind, ref=ref, detail=text)

    @property
    def in_flight(self) -> int:
        """Messages scheduled but not delivered yet, plus handlers still running."""
        return self._scheduled + len(self._tasks)

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait until every scheduled message is delivered and handled."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.in_flight and loop.time() < end:
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        """Drop whatever is still in flight and stop message handlers."""
        self._closed = True
        for h in self._pending:
            h.cancel()
        self._pending.clear()
        for queue in self._fifo.values():
            queue.clear()
        self._scheduled = 0
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except BaseException:
                pass


def _summary(message: dict[str, Any]) -> str:
    kind = message.get("type")
    if kind in ("video-offer", "video-answer"):
        sdp = message.get("sdp")
        if isinstance(sdp, dict):  # (no byte count: random SSRCs change it from run to run)
            text = str(sdp.get("sdp", ""))
            media = [line[2:].split(" ", 1)[0] for line in text.splitlines() if line.startswith("m=")]
            cands = sum(1 for line in text.splitlines() if line.startswith("a=candidate:"))
            return f"{sdp.get('type')} m=[{','.join(media)}] candidates={cands}"
        return "sdp"
    if kind == "new-ice-candidate":
        cand = message.get("candidate")
        line = cand.get("candidate") if isinstance(cand, dict) else None
        return str(line) if line else "end-of-candidates"
    return ""
