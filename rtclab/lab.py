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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from aiortc.mediastreams import MediaStreamTrack

from . import media
from .metrics import finalize_candidates, metrics_from_rows
from .peer import Peer
from .signaling import Channel, Endpoint
from .trace import Trace, save

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .network import SimNetwork

__all__ = ["App", "DEFAULTS", "Run", "User", "arun", "run"]

logger = logging.getLogger(__name__)

#: Parameters every flow accepts, with their defaults.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "network": "sim",
    "topology": "lan",
    "nat": "port-restricted",
    "stun": True,
    "turn": False,
    "link_latency_ms": 5.0,
    "link_loss": 0.0,
    "signaling_latency_ms": 20.0,
    "jitter_ms": 0.0,
    "reorder": 0.0,
    "loss": 0.0,
    "duplicate": 0.0,
    "answer_delay_ms": 1000.0,
    "candidate_interval_ms": 5.0,
    "deadline_s": None,
    "record_packets": False,
    "emulate": True,
    "hold_s": 0.0,
    "cut_at_s": None,
    "sim_video": media.SIM_VIDEO,
}

#: The camera's picture on the real network (``sim_video`` applies to the sim only).
REAL_VIDEO: tuple[int, int] = (320, 240)

NAT_TYPES = ("full-cone", "restricted", "port-restricted", "symmetric")
DEADLINE_SIM_S = 90.0
_EPSILON_S = 1e-6
DEADLINE_REAL_S = 10.0


class User:
    """The person in front of one app: answers after a think time, or on a button.

    In scripted runs, :meth:`answer` waits ``answer_delay_ms``. A
    :class:`rtclab.widgets.CallPanel` makes it wait for a real click instead,
    through :meth:`click`.
    """

    def __init__(self, actor: str, trace: Trace, *, answer_delay_ms: float | None) -> None:
        self.actor = actor
        self.trace = trace
        self.answer_delay_ms = answer_delay_ms
        self._clicks: dict[str, asyncio.Future[None]] = {}

    def _future(self, what: str) -> asyncio.Future[None]:
        fut = self._clicks.get(what)
        if fut is None or fut.done() and fut.cancelled():
            fut = asyncio.get_running_loop().create_future()
            self._clicks[what] = fut
        return fut

    def click(self, what: str) -> None:
        """A real click on a button (used by the call panel)."""
        fut = self._future(what)
        if not fut.done():
            fut.set_result(None)

    def call(self) -> None:
        """The user clicks *Call* (recorded)."""
        self.trace.record("user", "user", "click", "call", detail=self.actor)

    async def answer(self) -> None:
        """Ring, then return when the user clicks *Answer* (recorded)."""
        self.trace.record("user", "user", "prompt", "answer", detail=self.actor)
        if self.answer_delay_ms is None:
            await self._future("answer")
        else:
            await asyncio.sleep(self.answer_delay_ms / 1000.0)
        self.trace.record("user", "user", "click", "answer", detail=self.actor)


class App:
    """What one side's web page has: signaling, peer connections, camera, its user.

    Flows are written against this object only, like browser code:
    ``app.RTCPeerConnection()``, ``app.getUserMedia()``, ``app.send(msg)``,
    ``app.on_message(handler)``, ``await app.user.answer()``.
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
        """The other side's name (the MDN sample's ``target``)."""
        return "callee" if self.actor == "caller" else "caller"

    def RTCPeerConnection(self) -> Peer:  # noqa: N802 - browser name
        """A new instrumented peer connection for this side."""
        pc = Peer(self.actor, self.trace, **self.peer_options)
        self.peers.append(pc)
        return pc

    def getUserMedia(self, *, video: bool = True, audio: bool = False) -> list[MediaStreamTrack]:  # noqa: N802
        """Synthetic camera/microphone tracks (recorded as a ``call`` row)."""
        tracks = media.getUserMedia(video=video, audio=audio, video_size=self.video_size)
        self.tracks.extend(tracks)
        self.trace.record(self.actor, "call", "getUserMedia", "ok", detail=",".join(t.kind for t in tracks))
        return tracks

    def send(self, message: dict[str, Any]) -> str:
        """Send a signaling message to the other app."""
        return self.endpoint.send(message)

    def on_message(self, handler: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        """Set the handler of incoming signaling messages (``socket.onmessage``)."""
        return self.endpoint.on_message(handler)

    def reject(self, message: Any, reason: str) -> None:
        """Record that the app could not handle a message (unknown type, bad fields)."""
        kind = message.get("type") if isinstance(message, dict) else type(message).__name__
        self.trace.record(self.actor, "error", "onmessage", "UnknownMessage", detail=f"{reason}: {str(kind)[:64]!r}")

    def report_error(self, exc: BaseException) -> None:
        """Log an error the app caught (the sample's ``reportError``): an ``error`` row."""
        from .peer import error_name

        self.trace.record(self.actor, "error", "app", error_name(exc), detail=str(exc))

    async def close(self) -> None:
        """Close every peer and stop every track of this app."""
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


def _params(flow: str, params: dict[str, Any]) -> dict[str, Any]:
    from .flows import get_flow

    spec = get_flow(flow)
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"unknown parameter(s) {unknown} for run(); known: {sorted(DEFAULTS)}")
    out = dict(DEFAULTS)
    out.update(params)
    if out["network"] not in ("sim", "real"):
        raise ValueError(f"network must be 'sim' or 'real', got {out['network']!r}")
    if out["topology"] not in ("lan", "nat"):
        raise ValueError(f"topology must be 'lan' or 'nat', got {out['topology']!r}")
    for key in ("signaling_latency_ms", "jitter_ms", "answer_delay_ms", "candidate_interval_ms", "link_latency_ms"):
        if key == "answer_delay_ms" and out[key] is None and out["network"] == "real":
            continue  # wait for a real click (the call panel)
        if not isinstance(out[key], (int, float)) or isinstance(out[key], bool) or not 0 <= float(out[key]) < 3.6e6:
            raise ValueError(f"{key} must be a number of milliseconds >= 0, got {out[key]!r}")
    for key in ("reorder", "loss", "duplicate", "link_loss"):
        if not isinstance(out[key], (int, float)) or isinstance(out[key], bool) or not 0.0 <= float(out[key]) <= 1.0:
            raise ValueError(f"{key} must be a probability in [0, 1], got {out[key]!r}")
    nat = out["nat"]
    for t in (nat,) if isinstance(nat, str) else tuple(nat):
        if t not in NAT_TYPES:
            raise ValueError(f"nat must be one of {NAT_TYPES} (or a (caller, callee) pair), got {t!r}")
    if not isinstance(nat, str):
        out["nat"] = tuple(nat)
        if len(out["nat"]) != 2:
            raise ValueError("nat as a pair must have two entries: (caller, callee)")
    if not isinstance(out["hold_s"], (int, float)) or out["hold_s"] < 0:
        raise ValueError(f"hold_s must be >= 0 seconds, got {out['hold_s']!r}")
    size = out["sim_video"]
    if (
        not isinstance(size, (tuple, list)) or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= 4096 and v % 2 == 0 for v in size)
    ):
        raise ValueError(f"sim_video must be a (width, height) pair of even pixel counts, e.g. (320, 240); got {size!r}")
    out["sim_video"] = tuple(size)
    if out["cut_at_s"] is not None and out["network"] != "sim":
        raise ValueError("cut_at_s (cutting the media path) needs network='sim'")
    if out["deadline_s"] is None:
        out["deadline_s"] = DEADLINE_SIM_S if out["network"] == "sim" else DEADLINE_REAL_S
    if float(out["deadline_s"]) <= 0:
        raise ValueError("deadline_s must be > 0")
    out["seed"] = int(out["seed"])
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
    flow: str, p: dict[str, Any], trace_box: list[Trace], net: SimNetwork | None, hooks: Any = None,
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
    users = {a: User(a, trace, answer_delay_ms=p["answer_delay_ms"]) for a in ("caller", "callee")}
    video_size = tuple(p["sim_video"]) if net is not None else REAL_VIDEO
    apps = {
        a: App(a, trace, channel.endpoint(a), users[a], peer_options=peer_options, video_size=video_size)  # type: ignore[arg-type]
        for a in ("caller", "callee")
    }
    loop = asyncio.get_running_loop()
    watcher = _Watcher(trace, apps, channel, spec, hold_s=float(p["hold_s"]))
    if net is not None and p["cut_at_s"] is not None:
        cut_at = float(p["cut_at_s"])
        net.cut(cut_at, peers_only=True)  # keep STUN/TURN reachable: only the call's path breaks
        loop.call_at(loop.time() + cut_at, lambda: trace.record(
            "network", "net", "cut", "path cut", detail="from now on every packet between the two hosts is dropped"))
    if hooks is not None:  # the call panel: live rows, real clicks, hang-up
        hooks.attach(trace, users)
        watcher.stop = hooks.stop_event()
    watcher.abort = abort
    before = asyncio.all_tasks()
    app_tasks: list[asyncio.Task[Any]] = []
    try:
        app_tasks.append(asyncio.ensure_future(_guarded(trace, "callee", spec.callee(apps["callee"]))))
        users["caller"].call()
        app_tasks.append(asyncio.ensure_future(_guarded(trace, "caller", spec.caller(apps["caller"]))))
        await watcher.wait(loop.time() + float(p["deadline_s"]))
    finally:
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
    except Exception as exc:
        from .peer import error_name

        trace.record(actor, "error", "app", error_name(exc), detail=str(exc))


class _Watcher:
    """Ends a run when its outcome is known, or at the deadline."""

    def __init__(self, trace: Trace, apps: dict[str, App], channel: Channel, spec: Any, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s
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
        self.changed.set()

    def done(self) -> bool:
        if self.failed:
            return True
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
        if self.hold_s > 0 and not self.failed:
            # keep the call up (media flowing) for hold_s, unless it breaks
            hold_end = min(deadline, loop.time() + self.hold_s)
            while hold_end - loop.time() > _EPSILON_S and not self.failed and not self.closed:
                if (self.stop is not None and self.stop.is_set()) or (self.abort is not None and self.abort.is_set()):
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
        while loop.time() < end and (self.channel.in_flight or any(
            pc._emitter is not None and not pc._emitter.done() for app in self.apps.values() for pc in app.peers
        )):
            await asyncio.sleep(0.005)


def _finish(flow: str, p: dict[str, Any], trace: Trace | None, wall_s: float, error: BaseException | None) -> Run:
    if trace is None:
        trace = Trace(clock=lambda: 0.0)
    if error is not None:
        from .peer import error_name

        trace.record("network", "error", "runner", error_name(error), detail=str(error) or repr(error))
    finalize_candidates(trace)
    events = trace.frame()
    # from the recorded tuples: the same values as compute_metrics(events), without pandas filters
    metrics = metrics_from_rows(trace.rows, media=_flow_media(flow))
    return Run(flow=flow, params=p, events=events, metrics=metrics, wall_s=wall_s)


def _flow_media(flow: str) -> bool:
    from .flows import get_flow

    return get_flow(flow).media


async def arun(flow: str, **params: Any) -> Run:
    """Play one call of ``flow`` and return its :class:`Run` (``await``-able).

    Parameters
    ----------
    flow
        A flow name (see ``rtclab.flows.FLOWS``).
    **params
        See :data:`DEFAULTS`: ``seed``, ``network`` (``"sim"``/``"real"``),
        ``topology`` (``"lan"``/``"nat"``), ``nat`` (type or ``(caller,
        callee)`` pair), ``stun``, ``turn``, ``signaling_latency_ms``,
        ``jitter_ms``, ``reorder``, ``loss``, ``duplicate``,
        ``answer_delay_ms``, ``candidate_interval_ms``, ``deadline_s``,
        ``link_latency_ms``, ``link_loss``, ``record_packets``, ``emulate``,
        ``hold_s``, ``cut_at_s``, ``sim_video`` (the camera's ``(width,
        height)`` on the simulated network: 160x120 by default, to keep long
        calls cheap; ``(320, 240)`` is the real network's picture).

    Examples
    --------
    >>> import asyncio, rtclab
    >>> asyncio.run(rtclab.arun("basic")).outcome  # doctest: +SKIP
    'connected'
    """
    p = _params(flow, params)
    if p["network"] == "sim":
        abort = threading.Event()
        try:
            return await asyncio.to_thread(_run_blocking, flow, p, abort)
        except BaseException:
            abort.set()  # cancelled: let the worker thread's run end now, not at its deadline
            raise
    return await _arun_real(flow, p)


async def _arun_real(flow: str, p: dict[str, Any], hooks: Any = None, abort: threading.Event | None = None) -> Run:
    import time

    box: list[Trace] = []
    t0 = time.perf_counter()
    error: BaseException | None = None
    try:
        await _play(flow, p, box, None, hooks, abort=abort)
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # recorded, the run still returns
        error = exc
    return _finish(flow, p, box[0] if box else None, time.perf_counter() - t0, error)


def _run_blocking(flow: str, p: dict[str, Any], abort: threading.Event | None = None) -> Run:
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


def run(flow: str = "basic", **params: Any) -> Run:
    """Play one call of ``flow`` and return its :class:`Run`.

    Works from plain Python and inside a running Jupyter kernel (the call then
    runs in a worker thread with its own event loop; no ``nest_asyncio``).
    Parameters are those of :func:`arun`.

    Examples
    --------
    >>> import rtclab
    >>> r = rtclab.run("basic", seed=1)  # doctest: +SKIP
    >>> r.outcome  # doctest: +SKIP
    'connected'
    """
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


def flow_source(flow: str, *, helpers: bool = True) -> str:
    """The source code of a flow's two apps, for printing in notebooks.

    With ``helpers=True`` the shared pieces of app code they call
    (``send_candidates``, ``send_offer_on_negotiationneeded``,
    ``CandidateQueue``) are printed first, so nothing the app does is hidden.

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

    for fn in apps:
        names(fn.__code__)
    shared = [getattr(flows, n) for n in ("send_candidates", "send_offer_on_negotiationneeded", "CandidateQueue") if n in used]
    parts = [inspect.getsource(obj) for obj in (shared if helpers else [])]
    parts += [inspect.getsource(fn) for fn in apps]
    return "\n\n".join(p.rstrip() for p in parts) + "\n"
