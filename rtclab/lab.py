"""Run a flow: wire two apps, their peers, the signaling channel and a network.

:func:`run` (synchronous, also inside a running Jupyter loop) and :func:`arun`
(``await``-able) play one call of a flow and return a :class:`Run` whose
``events`` frame holds everything that happened. :func:`sweep` (in
``rtclab.sweeps``) repeats runs over a grid of parameters.

Every run has a deadline (``deadline_s``, in virtual seconds on the simulated
network) and closes every peer, track, message and task it opened, on
success, failure, timeout and exception alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from aiortc.mediastreams import MediaStreamTrack

from . import interfaces as _interfaces  # noqa: F401 - wraps aioice before rtclab.network captures it
from . import media
from .flows import AppCode, Flow, as_flow
from .metrics import finalize_candidates, metrics_from_rows
from .params import DEADLINE_REAL_S, DEADLINE_SIM_S, NAT_TYPES, RunParams  # noqa: F401 - the first three re-exported
from .peer import Peer
from .signaling import Channel, Endpoint
from .trace import Trace, save

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .network import SimNetwork

__all__ = ["App", "DEFAULTS", "Run", "User", "arun", "run"]

logger = logging.getLogger(__name__)

#: Parameters every flow accepts, with their defaults (the fields of
#: :class:`rtclab.params.RunParams`, where each one's unit, range and meaning live).
DEFAULTS: dict[str, Any] = RunParams().to_dict()

#: The camera's picture on the real network (``sim_video`` applies to the sim only).
REAL_VIDEO: tuple[int, int] = (320, 240)

_EPSILON_S = 1e-6


class User:
    """The person in front of one app: clicks *Call*, thinks, clicks *Answer*.

    Every app has one, as ``app.user``. In a scripted run the user answers
    after ``answer_delay_ms`` (the think time); in the call panel
    (:class:`rtclab.widgets.CallPanel`) on the real network :meth:`answer`
    waits for a real click on the panel's **Answer** button instead. Clicks
    are recorded as ``user`` rows, so plots show when the person acted.

    Examples
    --------
    In a callee's app, ring and wait for the user, as the sample app's
    incoming-call dialog does:

    >>> async def callee(app):
    ...     async def on_message(msg):
    ...         if msg["type"] == "video-offer":
    ...             await app.user.answer()  # the Answer button
    ...             ...
    ...     app.on_message(on_message)
    """

    def __init__(self, actor: str, trace: Trace, *, answer_delay_ms: float | None, decision: str = "accept") -> None:
        self.actor = actor
        self.trace = trace
        self.answer_delay_ms = answer_delay_ms
        self.decision = decision
        self._clicks: dict[str, asyncio.Future[None]] = {}

    def _future(self, what: str) -> asyncio.Future[None]:
        fut = self._clicks.get(what)
        if fut is None or fut.done() and fut.cancelled():
            fut = asyncio.get_running_loop().create_future()
            self._clicks[what] = fut
        return fut

    def click(self, what: str) -> None:
        """Deliver a real click on the button ``what`` (used by the call panel).

        Parameters
        ----------
        what
            The button: ``"answer"`` releases a pending :meth:`answer`.

        Examples
        --------
        >>> user.click("answer")  # doctest: +SKIP
        """
        fut = self._future(what)
        if not fut.done():
            fut.set_result(None)

    def call(self) -> None:
        """Record that this user clicks *Call* (a ``user`` row, value ``call``).

        The runner clicks *Call* for the caller before its app starts; an app
        in which both users call at once (``glare``, ``perfect``) calls it
        for the callee. It only records: the app itself then does what its
        *Call* button's handler does in a web page.

        Examples
        --------
        >>> async def both_call(app):
        ...     if app.actor == "callee":
        ...         app.user.call()  # the other user clicks Call too
        """
        self.trace.record("user", "user", "click", "call", detail=self.actor)

    async def answer(self) -> None:
        """Ring, then return when the user clicks *Answer*.

        Maps to the moment the incoming-call dialog's **Answer** button is
        clicked in the sample app. Records a ``prompt`` row when ringing
        starts and a ``click`` row (value ``answer``) when the user answers:
        after ``answer_delay_ms`` in scripted runs, on the real click in the
        call panel.

        Examples
        --------
        >>> async def callee(app):
        ...     await app.user.answer()  # the user thinks, then clicks Answer
        """
        self.trace.record("user", "user", "prompt", "answer", detail=self.actor)
        if self.answer_delay_ms is None:
            await self._future("answer")
        else:
            await asyncio.sleep(self.answer_delay_ms / 1000.0)
        self.trace.record("user", "user", "click", "answer", detail=self.actor)

    async def decide(self) -> str:
        """Ring, then return the user's choice: ``"accept"`` or ``"decline"``.

        An incoming-call dialog with two buttons, *Answer* and *Decline*.
        Records a ``prompt`` row when ringing starts and a ``click`` row when
        the user chooses (value ``answer`` or ``decline``). In scripted runs
        the choice is the run's ``decision`` parameter (default ``"accept"``),
        made after ``answer_delay_ms``; in the call panel it is the first
        real click on *Answer* (or a ``click("decline")``).

        Returns
        -------
        str
            ``"accept"`` or ``"decline"``.

        Examples
        --------
        >>> async def callee(app):
        ...     if await app.user.decide() == "decline":
        ...         app.send({"type": "call-declined", "target": app.other})
        >>> rtclab.run("counteroffer", decision="decline").outcome  # doctest: +SKIP
        'declined'
        """
        self.trace.record("user", "user", "prompt", "answer", detail=self.actor)
        if self.answer_delay_ms is None:
            answer, decline = self._future("answer"), self._future("decline")
            await asyncio.wait([answer, decline], return_when=asyncio.FIRST_COMPLETED)
            choice = "accept" if answer.done() else "decline"
        else:
            await asyncio.sleep(self.answer_delay_ms / 1000.0)
            choice = self.decision
        self.trace.record("user", "user", "click", "answer" if choice == "accept" else "decline", detail=self.actor)
        return choice


class App:
    """What one side's web page has: peer connections, a camera, a signaling socket, a user.

    This is the learner's API: the built-in flows and your own are async
    functions ``async def caller(app)`` / ``async def callee(app)`` written
    against this object only, the way a web page's script is written against
    the browser. Each method is the browser (or sample-app) facility named
    beside it:

    ==================================  ===============================================
    rtclab                              in a web page
    ==================================  ===============================================
    ``pc = app.RTCPeerConnection()``    ``pc = new RTCPeerConnection(config)``
    ``app.RTCPeerConnection(config)``   ``new RTCPeerConnection({iceTransportPolicy})``
    ``app.getUserMedia()``              ``await navigator.mediaDevices.getUserMedia()``
    ``app.send(msg)``                   ``socket.send(JSON.stringify(msg))``
    ``app.on_message(handler)``         ``socket.onmessage = handler``
    ``await app.user.answer()``         the user clicks the *Answer* button
    ``await app.user.decide()``         the user clicks *Answer* or *Decline*
    ``app.user.call()``                 the user clicks the *Call* button
    ``app.report_error(err)``           the sample's ``reportError(err)`` (console log)
    ``app.actor``, ``app.other``        who am I, who is ``target``
    ==================================  ===============================================

    The peer connection (:class:`rtclab.Peer`) keeps the browser's names:
    ``createOffer``, ``setLocalDescription``, ``addIceCandidate``,
    ``addTrack``, ``pc.on("icecandidate", handler)`` for
    ``pc.onicecandidate = handler``, and so on. Every call and event is
    recorded in the run's frame. An exception your app does not catch, at the
    top of the function or in any handler, becomes an ``error`` row whose
    ``detail`` ends with the line of your code that raised it; the run goes
    on to its outcome or deadline, as a page goes on after an uncaught
    error.

    Attributes
    ----------
    actor
        ``"caller"`` or ``"callee"``: which side this page is.
    user
        The :class:`User` in front of this page.
    state
        A dict for your own app state, if a closure is not enough.

    Examples
    --------
    A caller that adds its camera and offers when the browser says
    negotiation is needed:

    >>> async def caller(app):
    ...     pc = app.RTCPeerConnection()
    ...     pc.on("icecandidate", lambda c: app.send(
    ...         {"type": "new-ice-candidate", "target": app.other, "candidate": c}))
    ...     async def on_negotiationneeded():
    ...         await pc.setLocalDescription(await pc.createOffer())
    ...         app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})
    ...     pc.on("negotiationneeded", on_negotiationneeded)
    ...     async def on_message(msg):
    ...         if msg["type"] == "video-answer":
    ...             await pc.setRemoteDescription(msg["sdp"])
    ...         elif msg["type"] == "new-ice-candidate":
    ...             await pc.addIceCandidate(msg["candidate"])
    ...     app.on_message(on_message)
    ...     for track in app.getUserMedia():
    ...         pc.addTrack(track)
    >>> import rtclab
    >>> rtclab.run(caller=caller, callee=rtclab.flows.basic_callee).outcome  # doctest: +SKIP
    'connected'
    """

    def __init__(
        self, actor: str, trace: Trace, endpoint: Endpoint, user: User, *, peer_options: dict[str, Any],
        video_size: tuple[int, int] = REAL_VIDEO,
    ) -> None:
        self.actor = actor
        self.video_size = video_size
        self.trace = trace
        self.endpoint = endpoint
        self.user = user
        self.peer_options = peer_options
        self.peers: list[Peer] = []
        self.tracks: list[MediaStreamTrack] = []
        self.state: dict[str, Any] = {}

    @property
    def other(self) -> str:
        """The other side's name: the ``target`` of the messages you send.

        Examples
        --------
        >>> app.send({"type": "hang-up", "target": app.other})  # doctest: +SKIP
        """
        return "callee" if self.actor == "caller" else "caller"

    def RTCPeerConnection(self, configuration: dict[str, Any] | None = None) -> Peer:  # noqa: N802 - browser name
        """Create a peer connection for this side: ``new RTCPeerConnection(configuration)``.

        The configuration is the run's: its ICE servers (the simulated
        STUN/TURN servers, or none) and rtclab's browser emulations. Create
        as many as your app needs; all are closed when the run ends.

        Parameters
        ----------
        configuration
            An ``RTCConfiguration`` dict, as in the browser. Only
            ``{"iceTransportPolicy": "relay"}`` (or ``"all"``, the default)
            is taken: a relay-only peer gathers and offers only TURN
            candidates, so its own addresses stay private (run with
            ``turn=True`` to have a TURN server). A bad value raises the
            browser's ``TypeError``.

        Returns
        -------
        rtclab.Peer
            The instrumented connection, with the browser's method and
            attribute names (``createOffer``, ``signalingState``…) and
            ``pc.on(event, handler)`` for the ``on<event>`` properties.

        Examples
        --------
        >>> pc = app.RTCPeerConnection()  # doctest: +SKIP
        >>> pc.signalingState  # doctest: +SKIP
        'stable'
        >>> private = app.RTCPeerConnection({"iceTransportPolicy": "relay"})  # doctest: +SKIP
        """
        from .peer.core import configuration_policy

        try:
            policy = configuration_policy(configuration, "RTCPeerConnection")
        except TypeError as exc:
            self.trace.record(self.actor, "call", "RTCPeerConnection", "error", detail=f"TypeError: {exc}")
            raise
        options = dict(self.peer_options)
        if policy is not None:
            options["ice_transport_policy"] = policy
        pc = Peer(self.actor, self.trace, **options)
        self.peers.append(pc)
        return pc

    def getUserMedia(self, *, video: bool = True, audio: bool = False) -> list[MediaStreamTrack]:  # noqa: N802
        """The camera (and microphone): ``navigator.mediaDevices.getUserMedia()``.

        Synthetic tracks (no hardware needed), recorded as a ``call`` row. Not
        awaited: permission prompts are not simulated.

        Parameters
        ----------
        video, audio
            Which tracks, as in ``getUserMedia({video, audio})``.

        Returns
        -------
        list of MediaStreamTrack
            The stream's tracks (``stream.getTracks()``): add them with
            ``pc.addTrack(track)``.

        Examples
        --------
        >>> for track in app.getUserMedia():  # doctest: +SKIP
        ...     pc.addTrack(track)
        """
        tracks = media.getUserMedia(video=video, audio=audio, video_size=self.video_size)
        self.tracks.extend(tracks)
        self.trace.record(self.actor, "call", "getUserMedia", "ok", detail=",".join(t.kind for t in tracks))
        return tracks

    def send(self, message: dict[str, Any]) -> str:
        """Send a signaling message to the other app: ``socket.send(JSON.stringify(message))``.

        The message travels over the run's signaling channel, with its
        latency, jitter, loss, duplication and reordering; it is recorded as
        ``sent``, then ``delivered`` or ``dropped``. Use the MDN sample's
        shapes: ``{"type": "video-offer", "target": app.other, "sdp": ...}``,
        ``video-answer``, ``new-ice-candidate`` (``candidate``; ``None`` for
        end-of-candidates), ``hang-up``; any JSON-like dict goes.

        Returns
        -------
        str
            The message's ``ref`` in the frame (e.g. ``"m3"``).

        Examples
        --------
        >>> app.send({"type": "video-offer", "target": app.other,
        ...           "sdp": pc.localDescription})  # doctest: +SKIP
        'm1'
        """
        return self.endpoint.send(message)

    def on_message(self, handler: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """Set the handler of incoming signaling messages: ``socket.onmessage = handler``.

        ``handler(msg)`` gets the message dict (already parsed, as after
        ``JSON.parse(event.data)``; a missing key reads as ``None``, like
        ``undefined``). It may be ``async``; messages are delivered one by
        one, and an async handler's work runs on while the next message
        arrives, as in a page. A message that arrives before a handler is set
        is lost (a ``NoHandler`` error row). Also usable as a decorator.

        Examples
        --------
        >>> @app.on_message  # doctest: +SKIP
        ... async def on_message(msg):
        ...     if msg["type"] == "video-answer":
        ...         await pc.setRemoteDescription(msg["sdp"])
        """
        return self.endpoint.on_message(handler)

    def reject(self, message: Any, reason: str) -> None:
        """Record that the app could not handle a message (unknown type, bad fields).

        An ``error`` row (``UnknownMessage``) instead of silence: what a
        careful page logs in the ``default:`` branch of its message switch.

        Examples
        --------
        >>> app.reject(msg, "unknown message type")  # doctest: +SKIP
        """
        kind = message.get("type") if isinstance(message, dict) else type(message).__name__
        self.trace.record(self.actor, "error", "onmessage", "UnknownMessage", detail=f"{reason}: {str(kind)[:64]!r}")

    def report_error(self, exc: BaseException) -> None:
        """Log an error the app caught: the MDN sample's ``reportError(err)``.

        An ``error`` row named after the browser's error type
        (``InvalidStateError``…), with the message and the line of your code
        that raised it. The app goes on.

        Examples
        --------
        >>> try:  # doctest: +SKIP
        ...     await pc.addIceCandidate(msg["candidate"])
        ... except Exception as err:
        ...     app.report_error(err)
        """
        from .peer import error_name
        from .tracebacks import with_location

        self.trace.record(self.actor, "error", "app", error_name(exc), detail=with_location(str(exc), exc))

    async def close(self) -> None:
        """Close every peer and stop every track of this app (the runner does it at the end)."""
        for pc in self.peers:
            try:
                await pc.close()
            except Exception as exc:  # one peer failing to close must not leave the others open
                self.report_error(exc)
        for track in self.tracks:
            track.stop()


@dataclass
class Run:
    """The result of one call: its events, outcome and metrics.

    Attributes
    ----------
    flow
        The flow's name.
    params
        Every parameter of the run (defaults filled in).
    events
        The tidy event frame (see :mod:`rtclab.trace`).
    outcome
        ``connected``, ``failed``, ``no-media``, ``timeout`` or ``error``.
    reason
        Why, in a few words, taken from the frame.
    metrics
        A Series: ``t_connected_ms``, ``t_first_frame_ms``,
        ``answer_to_media_ms``, ``gathering_ms``, candidate and message counts,
        ``errors``...
    """

    flow: str
    params: dict[str, Any]
    events: pd.DataFrame
    metrics: pd.Series = field(repr=False)
    wall_s: float = 0.0

    @property
    def outcome(self) -> str:
        """The run's outcome."""
        return str(self.metrics["outcome"])

    @property
    def reason(self) -> str:
        """Why the run ended as it did."""
        return str(self.metrics["reason"])

    def save(self, path: str | Path) -> Path:
        """Write the events as CSV with the run's parameters (``rtclab.load`` reads it)."""
        return save(self.events, path, meta={"flow": self.flow, "params": self.params})

    def plot(self, **kwargs: Any) -> Figure:
        """The one-look summary: sequence diagram above the state timelines."""
        from . import plots

        return plots.summary(self, **kwargs)

    def table(self, kinds: tuple[str, ...] = ("call", "signal", "state", "media", "user", "error"), *, limit: int | None = None) -> pd.DataFrame:
        """A compact view of the events (no candidate pair checks, short details)."""
        df = self.events[self.events["kind"].isin(kinds)].copy()
        df["detail"] = df["detail"].str.slice(0, 48)
        return df if limit is None else df.head(limit)

    def __repr__(self) -> str:
        return f"Run(flow={self.flow!r}, outcome={self.outcome!r}, reason={self.reason!r}, events={len(self.events)} rows)"


def _params(flow: str | Flow, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` against :class:`~rtclab.params.RunParams`; the full dict, with ``flow``."""
    from .flows import get_flow

    spec = get_flow(flow)
    out = RunParams.from_dict(params).resolved().to_dict()
    out["flow"] = spec.name
    return out


def _is_aiortc_connect_after_close(context: dict[str, Any]) -> bool:
    """aiortc's background ``__connect`` task failing because its peer connection was closed first.

    aiortc starts ``RTCPeerConnection.__connect()`` as a task it never awaits;
    when the connection is closed (a hang-up, a rollback) before ICE starts,
    the task ends with ``InvalidStateError: RTCIceTransport is closed`` and
    asyncio prints "Task exception was never retrieved" when it is collected.
    A browser has no such message: the close is already in the frame.
    """
    exc = context.get("exception")
    task = context.get("future")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    return (
        type(exc).__name__ == "InvalidStateError"
        and "is closed" in str(exc)
        and getattr(coro, "__qualname__", "").startswith("RTCPeerConnection.")
    )


def _quiet_closed_connects(loop: asyncio.AbstractEventLoop) -> None:
    """Keep that one aiortc message out of notebooks; every other error still reaches the loop's handler."""
    previous = loop.get_exception_handler()
    if getattr(previous, "_rtclab_filter", False):
        return

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _is_aiortc_connect_after_close(context):
            logger.debug("ignored: %s", context.get("message"))
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    handler._rtclab_filter = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


async def _play(
    flow: str | Flow, p: dict[str, Any], trace_box: list[Trace], net: SimNetwork | None, hooks: Any = None,
    abort: threading.Event | None = None,
) -> None:
    """Play one call inside the running loop; always cleans up."""
    from .flows import get_flow

    spec = get_flow(flow)
    trace = Trace()
    trace_box.append(trace)
    _quiet_closed_connects(asyncio.get_running_loop())
    if net is not None:
        net.attach(trace.record)
    channel = Channel(
        trace,
        latency_ms=p["signaling_latency_ms"],
        jitter_ms=p["jitter_ms"],
        loss=p["loss"],
        duplicate=p["duplicate"],
        reorder=p["reorder"],
        seed=p["seed"],
    )
    emulate = bool(p["emulate"])
    ice_servers = net.ice_servers() if net is not None else []
    peer_options = {
        "ice_servers": ice_servers,
        "candidate_interval_ms": p["candidate_interval_ms"],
        "trickle": emulate,
        "chain": emulate,
        "negotiationneeded": emulate,
        "browser_errors": emulate,
        "rollback": emulate,
        "ice_states": emulate,
        "end_of_candidates": emulate,
        "triggered_checks": emulate,
        "silent_close": emulate,
        "track_mute": emulate,
        "gathering_state": emulate,
    }
    users = {a: User(a, trace, answer_delay_ms=p["answer_delay_ms"], decision=p["decision"]) for a in ("caller", "callee")}
    video_size = tuple(p["sim_video"]) if net is not None else REAL_VIDEO
    apps = {
        a: App(a, trace, channel.endpoint(a), users[a], peer_options=peer_options, video_size=video_size)  # type: ignore[arg-type]
        for a in ("caller", "callee")
    }
    loop = asyncio.get_running_loop()
    watcher = _Watcher(trace, apps, channel, spec, hold_s=float(p["hold_s"]),
                       ride_out_failure=net is not None and p["cut_for_s"] is not None)
    if net is not None and p["cut_at_s"] is not None:
        cut_at = float(p["cut_at_s"])
        cut_for = None if p["cut_for_s"] is None else float(p["cut_for_s"])
        net.cut(cut_at, peers_only=True, for_s=cut_for)  # keep STUN/TURN reachable: only the call's path breaks
        until = "from now on" if cut_for is None else f"for {cut_for:g} s"
        loop.call_at(loop.time() + cut_at, lambda: trace.record(
            "network", "net", "cut", "path cut", detail=f"{until} every packet between the two hosts is dropped"))
        if cut_for is not None:
            loop.call_at(loop.time() + cut_at + cut_for, lambda: trace.record(
                "network", "net", "cut", "path restored", detail="packets between the two hosts flow again"))
    if hooks is not None:  # the call panel: live rows, real clicks, hang-up
        hooks.attach(trace, users)
        watcher.stop = hooks.stop_event()
    watcher.abort = abort
    before = asyncio.all_tasks()
    app_tasks: list[asyncio.Task[Any]] = []
    guard = _StallGuard(loop, watcher) if net is not None else None  # virtual time can be starved
    try:
        app_tasks.append(asyncio.ensure_future(_guarded(trace, "callee", spec.callee(apps["callee"]))))
        users["caller"].call()
        app_tasks.append(asyncio.ensure_future(_guarded(trace, "caller", spec.caller(apps["caller"]))))
        if guard is not None:
            guard.start()
        await watcher.wait(loop.time() + float(p["deadline_s"]))
    finally:
        if guard is not None:
            guard.stop()
        for task in app_tasks:
            task.cancel()
        await channel.close()
        for app in apps.values():
            await app.close()
        for task in app_tasks:
            try:
                await task
            except BaseException:
                pass
        leftovers = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=1.0)


async def _guarded(trace: Trace, actor: str, coro: Any) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an uncaught exception at the top of an app
        from .peer import error_name
        from .tracebacks import with_location

        trace.record(actor, "error", "app", error_name(exc), detail=with_location(str(exc), exc))


#: Wall-clock seconds the simulated clock may stand still before the run is ended as stalled.
STALL_WALL_S = 15.0


class _StallGuard:
    """Ends a simulated run whose virtual clock stands still (app code spinning).

    The virtual clock advances only when nothing is ready to run, so an app
    that loops on ``await asyncio.sleep(0)`` (or polls a state that way)
    starves it: no timer, not even the deadline, ever fires. A browser's clock
    keeps going, so such code "works" there, slowly. A thread watches the
    clock; after :data:`STALL_WALL_S` seconds of wall time without progress it
    asks the loop to record a ``Stalled`` error naming the app line that
    spins, cancel the app's tasks, and end the run. Code that never awaits at
    all (``while True: pass``) cannot be interrupted, as in a browser tab.

    One watcher thread per process serves every running simulation (a short
    trial used to spend more wall time starting and joining its own thread
    than its first frame cost, on a loaded machine); it is started on first
    use, and again in a forked child, where it does not exist.
    """

    _lock = threading.Lock()
    _active: set[_StallGuard] = set()
    _thread: threading.Thread | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop, watcher: _Watcher) -> None:
        self.loop = loop
        self.watcher = watcher
        self.main = asyncio.current_task()
        self._last = 0.0
        self._since = 0.0

    def start(self) -> None:
        import time

        cls = type(self)
        with cls._lock:
            self._last, self._since = self.loop.time(), time.monotonic()
            cls._active.add(self)
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._watch_all, name="rtclab-stall-guard", daemon=True)
                cls._thread.start()

    def stop(self) -> None:
        """After this returns, the guard never schedules anything on the loop."""
        with type(self)._lock:
            type(self)._active.discard(self)

    @classmethod
    def _watch_all(cls) -> None:
        import time

        while True:
            time.sleep(min(0.5, STALL_WALL_S / 4))
            with cls._lock:
                for guard in list(cls._active):
                    guard._check(time.monotonic())

    @classmethod
    def _after_fork(cls) -> None:
        """In a forked child: no watcher thread yet, and a lock the parent's thread may have held."""
        cls._lock = threading.Lock()
        cls._active = set()
        cls._thread = None

    def _check(self, now_wall: float) -> None:
        """(watcher thread, under the lock) Note progress, or end the run after STALL_WALL_S without."""
        now = self.loop.time()
        if now != self._last:
            self._last, self._since = now, now_wall
        elif now_wall - self._since >= STALL_WALL_S:
            type(self)._active.discard(self)  # reported once
            try:
                self.loop.call_soon_threadsafe(self._stalled)
            except RuntimeError:  # the loop closed meanwhile: the run is over
                pass

    def _stalled(self) -> None:
        from .tracebacks import frame_location

        where = ""
        spinning = []
        for task in asyncio.all_tasks(self.loop):
            if task is self.main or task.done():
                continue
            frames = [f for f in _await_frames(task) if frame_location(f)]
            if frames:
                where = where or frame_location(frames[-1])
                spinning.append(task)
        self.watcher.trace.record(
            "network", "error", "runner", "Stalled",
            detail=f"virtual time stood still for {STALL_WALL_S:g} s of wall time: the app loops without waiting;"
            " await an event or a real sleep, not sleep(0) in a loop" + (f" {where}" if where else ""),
        )
        self.watcher.stalled = True
        for task in spinning:
            task.cancel()
        self.watcher.changed.set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_StallGuard._after_fork)


def _await_frames(task: asyncio.Task[Any]) -> list[Any]:
    """The frames of a task's coroutine and of every coroutine it awaits, outermost first."""
    frames = []
    coro: Any = task.get_coro()
    for _ in range(200):  # a chain of awaits, never a cycle; bounded anyway
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


class _Watcher:
    """Ends a run when its outcome is known, or at the deadline."""

    def __init__(self, trace: Trace, apps: dict[str, App], channel: Channel, spec: Any, hold_s: float = 0.0,
                 ride_out_failure: bool = False) -> None:
        self.hold_s = hold_s
        #: keep holding a connected call after ``failed`` (a healing cut: the app may recover)
        self.ride_out_failure = ride_out_failure
        self.closed = False
        self.trace = trace
        self.apps = apps
        self.channel = channel
        self.spec = spec
        self.changed = asyncio.Event()
        trace.subscribe(self._on_row)
        self.connected: set[str] = set()
        self.failed = False
        self.tracks: dict[str, set[str]] = {"caller": set(), "callee": set()}
        self.frames: dict[str, set[str]] = {"caller": set(), "callee": set()}
        self.stop: asyncio.Event | None = None
        self.abort: threading.Event | None = None  # set from another thread: the caller gave up
        self.stalled = False  # set by _StallGuard: the virtual clock stood still
        self.declined = False  # a user clicked Decline: the call ends once every peer is closed

    def _on_row(self, row: tuple[Any, ...]) -> None:
        _t, actor, kind, name, value = row[:5]
        if kind == "state" and name == "connectionState":
            if value == "connected":
                self.connected.add(actor)
            elif value == "failed":
                self.failed = True
            elif value == "closed" and actor in self.connected:
                self.closed = True  # e.g. consent expired
        elif kind == "media" and name == "track":
            self.tracks[actor].add(value)
        elif kind == "media" and name == "first-frame":
            self.frames[actor].add(value)
        elif kind == "user" and name == "click" and value == "decline":
            self.declined = True
        self.changed.set()

    def done(self) -> bool:
        if self.failed:
            return True
        if self.declined:
            pcs = [pc for app in self.apps.values() for pc in app.peers]
            return bool(pcs) and all(pc._closed for pc in pcs) and not self.channel.in_flight
        if self.connected == {"caller", "callee"}:
            wanted_media = self.spec.media
            if not wanted_media:
                return True
            have_tracks = all(self.tracks[a] for a in ("caller", "callee"))
            all_frames = all(self.tracks[a] <= self.frames[a] for a in ("caller", "callee"))
            return have_tracks and all_frames
        return self._nothing_negotiated()

    def _nothing_negotiated(self) -> bool:
        """Both sides stable with descriptions that negotiate no media at all."""
        pcs = [pc for app in self.apps.values() for pc in app.peers[-1:]]
        if len(pcs) != 2 or self.channel.in_flight:
            return False
        for pc in pcs:  # cheapest first: Peer.localDescription re-serialises aiortc's SDP
            if pc.signalingState != "stable":
                return False
            remote = pc.remoteDescription
            if remote is None or "\nm=" in remote["sdp"] or remote["sdp"].startswith("m="):
                return False
        return all(pc.localDescription is not None for pc in pcs)

    async def wait(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not self.done():
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]  # Python 3.11's wait_for may swallow a cancel
                raise asyncio.CancelledError
            if self.stop is not None and self.stop.is_set():
                self.trace.record("user", "user", "click", "hangup", detail="caller")
                return
            if self.abort is not None and self.abort.is_set():
                self.trace.record("network", "error", "runner", "Cancelled", detail="the caller cancelled the run")
                return
            if self.stalled:  # recorded by the guard
                return
            remaining = deadline - loop.time()
            if remaining <= _EPSILON_S:  # (an ulp of remaining time would never advance a virtual clock)
                self.trace.record("network", "error", "deadline", "timeout", detail="deadline reached: the call neither connected nor failed")
                return
            self.changed.clear()
            try:
                polled = self.stop is not None or self.abort is not None  # flags set from outside: look every 0.2 s
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.2) if polled else remaining)
            except asyncio.TimeoutError:
                pass
        if self.hold_s > 0 and not self.failed and not self.stalled:
            # keep the call up (media flowing) for hold_s, unless it breaks
            hold_end = min(deadline, loop.time() + self.hold_s)
            while hold_end - loop.time() > _EPSILON_S and not (self.failed and not self.ride_out_failure) and not self.closed:
                if self.stop is not None and self.stop.is_set():  # the call panel's Hang up, during the call
                    self.trace.record("user", "user", "click", "hangup", detail="caller")
                    break
                if self.abort is not None and self.abort.is_set():
                    break
                me = asyncio.current_task()
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError  # wait_for may have swallowed a cancel
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(), min(hold_end - loop.time(), 0.5))
                except asyncio.TimeoutError:
                    pass
        # let trickling and messages in flight finish, briefly, so plots show them
        end = loop.time() + 0.3
        while not self.stalled and loop.time() < end and (self.channel.in_flight or any(
            pc._emitter is not None and not pc._emitter.done() for app in self.apps.values() for pc in app.peers
        )):
            await asyncio.sleep(0.005)


def _finish(flow: str | Flow, p: dict[str, Any], trace: Trace | None, wall_s: float, error: BaseException | None) -> Run:
    if trace is None:
        trace = Trace(clock=lambda: 0.0)
    if error is not None:
        from .peer import error_name

        trace.record("network", "error", "runner", error_name(error), detail=str(error) or repr(error))
    finalize_candidates(trace)
    events = trace.frame()
    # from the recorded tuples: the same values as compute_metrics(events), without pandas filters
    metrics = metrics_from_rows(trace.rows, media=_flow_media(flow))
    return Run(flow=p.get("flow", flow) if isinstance(flow, str) else flow.name, params=p, events=events, metrics=metrics, wall_s=wall_s)


def _flow_media(flow: str | Flow) -> bool:
    from .flows import get_flow

    return get_flow(flow).media


async def arun(
    flow: str | Flow | None = None, *, caller: AppCode | None = None, callee: AppCode | None = None, **params: Any,
) -> Run:
    """Play one call and return its :class:`Run` (``await``-able).

    Parameters
    ----------
    flow
        A flow name (see ``rtclab.FLOWS``; default ``"basic"``) or an
        :class:`rtclab.Flow` you built.
    caller, callee
        Instead of ``flow``: your own two apps, ``async def caller(app)`` and
        ``async def callee(app)`` written against :class:`App` (for a
        symmetric app, the same function twice). The run's ``flow`` is
        named after them.
    **params
        The fields of :class:`rtclab.params.RunParams` (each with its unit,
        range and meaning; ``RunParams.describe()`` lists them): ``seed``,
        ``network`` (``"sim"``/``"real"``), ``topology`` (``"lan"``/``"nat"``),
        ``nat`` (type or ``(caller, callee)`` pair), ``stun``, ``turn``,
        ``signaling_latency_ms``, ``jitter_ms``, ``reorder``, ``loss``,
        ``duplicate``, ``answer_delay_ms``, ``candidate_interval_ms``,
        ``deadline_s``, ``link_latency_ms``, ``link_loss``,
        ``record_packets``, ``emulate``, ``hold_s``, ``cut_at_s``, ``cut_for_s``, ``sim_video``
        (the camera's ``(width, height)`` on the simulated network: 160x120 by
        default, to keep long calls cheap; ``(320, 240)`` is the real network's),
        ``interface`` (real network: ``"loopback"``, the default, gathers
        127.0.0.1 only; ``"lan"`` the machine's network addresses).

    Raises
    ------
    TypeError
        An unknown parameter name.
    ValueError
        A value out of its range (the message names the parameter and the range).

    Notes
    -----
    An exception your app code does not catch is an ``error`` row whose
    ``detail`` ends with ``(at FILE:LINE, in FUNCTION)``: the last line of
    *your* code in the traceback. The run still ends at its outcome or its
    deadline.

    Examples
    --------
    >>> import asyncio, rtclab
    >>> asyncio.run(rtclab.arun("basic")).outcome  # doctest: +SKIP
    'connected'
    >>> asyncio.run(rtclab.arun(caller=my_caller, callee=my_callee))  # doctest: +SKIP
    Run(flow='my_caller/my_callee', outcome='connected', ...)
    """
    flow = as_flow(flow, caller=caller, callee=callee)
    p = _params(flow, params)
    if p["network"] == "sim":
        abort = threading.Event()
        try:
            return await asyncio.to_thread(_run_blocking, flow, p, abort)
        except BaseException:
            abort.set()  # cancelled: let the worker thread's run end now, not at its deadline
            raise
    return await _arun_real(flow, p)


async def _arun_real(flow: str | Flow, p: dict[str, Any], hooks: Any = None, abort: threading.Event | None = None) -> Run:
    import time

    from .interfaces import gathering, usable_addresses

    box: list[Trace] = []
    t0 = time.perf_counter()
    error: BaseException | None = None
    try:
        usable_addresses(p["interface"])  # none: a clear error now, not a call that never connects
        with gathering(p["interface"]):  # loopback only unless interface="lan" (rtclab.interfaces)
            await _play(flow, p, box, None, hooks, abort=abort)
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # recorded, the run still returns
        error = exc
    return _finish(flow, p, box[0] if box else None, time.perf_counter() - t0, error)


def _run_blocking(flow: str | Flow, p: dict[str, Any], abort: threading.Event | None = None) -> Run:
    """Run in this thread, which must have no running event loop."""
    import time

    if p["network"] == "real":
        return asyncio.run(_arun_real(flow, p, abort=abort))
    from .network import SimNetwork, run_sim

    net = SimNetwork(
        topology=p["topology"],
        nat=p["nat"],
        latency_ms=p["link_latency_ms"],
        loss=p["link_loss"],
        seed=p["seed"],
        stun=p["stun"],
        turn=p["turn"],
        record_packets=p["record_packets"],
    )
    box: list[Trace] = []
    t0 = time.perf_counter()
    error: BaseException | None = None
    try:
        run_sim(lambda: _play(flow, p, box, net, abort=abort), net)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        error = exc
    return _finish(flow, p, box[0] if box else None, time.perf_counter() - t0, error)


def run(
    flow: str | Flow | None = None, *, caller: AppCode | None = None, callee: AppCode | None = None, **params: Any,
) -> Run:
    """Play one call and return its :class:`Run`.

    Works from plain Python and inside a running Jupyter kernel (the call then
    runs in a worker thread with its own event loop; no ``nest_asyncio``).
    Parameters are those of :func:`arun`: a flow name (default ``"basic"``),
    an :class:`rtclab.Flow`, or your own ``caller=``/``callee=`` apps.

    Examples
    --------
    >>> import rtclab
    >>> r = rtclab.run("basic", seed=1)  # doctest: +SKIP
    >>> r.outcome  # doctest: +SKIP
    'connected'

    Your own apps, written in a notebook cell:

    >>> async def my_callee(app):  # doctest: +SKIP
    ...     ...
    >>> rtclab.run(caller=rtclab.flows.basic_caller, callee=my_callee, topology="nat")  # doctest: +SKIP
    """
    flow = as_flow(flow, caller=caller, callee=callee)
    p = _params(flow, params)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_blocking(flow, p)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtclab-run") as pool:
        abort = threading.Event()
        try:
            return pool.submit(_run_blocking, flow, p, abort).result()
        except BaseException:  # KeyboardInterrupt in a notebook: stop the worker's run at once
            abort.set()
            raise


def flow_source(flow: str | Flow, *, helpers: bool = True) -> str:
    """The source code of a flow's two apps, for printing in notebooks.

    With ``helpers=True`` the shared pieces of app code they call
    (``send_candidates``, ``send_offer_on_negotiationneeded``,
    ``CandidateQueue`` from ``rtclab.flows``) are printed first, so nothing
    the app does is hidden. A symmetric flow's one app is printed once.

    Parameters
    ----------
    flow
        A flow name or a :class:`rtclab.Flow` (your own apps too). When an
        app's source cannot be found (code made by ``exec`` of a string, a
        builtin), a one-line comment says so in its place.

    Examples
    --------
    >>> print(flow_source("basic"))  # doctest: +ELLIPSIS
    def send_candidates(...
    """
    import types

    from . import flows
    from .flows import get_flow

    spec = get_flow(flow)
    apps = [spec.caller] if spec.callee is spec.caller else [spec.caller, spec.callee]
    used: list[str] = []

    def names(code: types.CodeType) -> None:
        for name in code.co_names:
            if name not in used:
                used.append(name)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names(const)

    def uses(fn: Any, helper: str) -> bool:
        # the helper of rtclab.flows, by that name (a learner's own helper of the same name is not it)
        glob = getattr(fn, "__globals__", {})
        return glob.get(helper, getattr(flows, helper) if "flows" in used else None) is getattr(flows, helper)

    for fn in apps:
        code = getattr(fn, "__code__", None)
        if code is not None:
            names(code)
    shared = [
        getattr(flows, n)
        for n in ("send_candidates", "send_offer_on_negotiationneeded", "CandidateQueue")
        if n in used and any(uses(fn, n) for fn in apps)
    ]
    parts = [_source(obj) for obj in (shared if helpers else [])]
    parts += [_source(fn) for fn in apps]
    return "\n\n".join(p.rstrip() for p in parts) + "\n"


def _source(obj: Any) -> str:
    """``inspect.getsource(obj)``, or a comment saying why it is not available."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError) as exc:
        name = getattr(obj, "__qualname__", None) or repr(obj)
        code = getattr(obj, "__code__", None)
        where = f" (defined in {code.co_filename})" if code is not None else ""
        return f"# source of {name} is not available{where}: {exc}"
