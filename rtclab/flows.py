"""The article's flows, written as app code the way a web developer writes it.

Each flow is two small async functions, the caller's page and the callee's
page. They use only what a browser app has (see :class:`rtclab.lab.App`): a
peer connection (``app.RTCPeerConnection()``), the camera
(``app.getUserMedia()``), the signaling socket (``app.send``,
``app.on_message``) and the user (``await app.user.answer()``). Notebooks print
them with ``rtclab.flow_source(name)``, so they are teaching material first:
short, commented where the lesson is, and faithful to the code they stand for,
weak spots included.

Messages follow the MDN sample: ``{"type": "video-offer", "target", "sdp"}``,
``{"type": "video-answer", ...}``, ``{"type": "new-ice-candidate", "target",
"candidate"}`` (``candidate`` is ``None`` for end-of-candidates) and
``{"type": "hang-up"}``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .lab import App
    from .peer import Peer

__all__ = ["FLOWS", "Flow", "as_flow", "get_flow"]

AppCode = Callable[["App"], Awaitable[None]]


@dataclass(frozen=True)
class Flow:
    """A flow: the caller's and the callee's app code, and what it teaches.

    The built-in flows of :data:`FLOWS` are ``Flow`` objects, and so is a
    learner's own: build one from two async app functions and pass it
    wherever a flow name goes (:func:`rtclab.run`, :func:`rtclab.sweep`,
    :func:`rtclab.flow_source`, :class:`rtclab.widgets.CallPanel`).

    Parameters
    ----------
    name
        What runs, sweeps and plots call it (the ``flow`` column).
    summary
        One line saying what the apps do.
    caller, callee
        ``async def app(app: rtclab.App) -> None``: each side's page. A
        symmetric app (both users click *Call*, as in ``glare`` and
        ``perfect``) is one function given as both; it tells the sides apart
        by ``app.actor``.
    media
        Whether the call is meant to carry media: ``True`` waits for a
        first frame both ways before calling it a success (``no-media``
        otherwise); ``False`` ends the run as soon as both sides connect.

    Examples
    --------
    >>> import rtclab
    >>> async def caller(app): ...
    >>> async def callee(app): ...
    >>> flow = rtclab.Flow("mine", "my first call", caller, callee)
    >>> flow.name, flow.media
    ('mine', True)
    >>> rtclab.run(flow, topology="nat").outcome  # doctest: +SKIP
    'connected'
    """

    name: str
    summary: str
    caller: AppCode
    callee: AppCode
    media: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise TypeError(f"a Flow's name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.summary, str):
            raise TypeError(f"a Flow's summary must be a string, got {type(self.summary).__name__}")
        for side in ("caller", "callee"):
            _check_app(side, getattr(self, side))
        if not isinstance(self.media, bool):
            raise TypeError(f"a Flow's media flag must be True or False, got {self.media!r}")


def _check_app(side: str, fn: Any) -> None:
    """A clear ``TypeError`` unless ``fn`` can be an app: ``async def fn(app)``."""
    if not callable(fn):
        raise TypeError(f"{side} must be an async function taking the app (async def {side}(app): ...), got {fn!r}")
    if inspect.isfunction(fn) and not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"{side} {fn.__name__!r} must be an async function: write 'async def {fn.__name__}(app): ...'"
            " (apps await browser calls such as setRemoteDescription)"
        )


def as_flow(flow: str | Flow | None = None, *, caller: AppCode | None = None, callee: AppCode | None = None) -> Flow:
    """The :class:`Flow` to run, from a name, a Flow, or two app functions.

    Parameters
    ----------
    flow
        A name from :data:`FLOWS` or a :class:`Flow`; ``None`` with
        ``caller``/``callee`` given builds one from them (default ``"basic"``).
    caller, callee
        The learner's two async app functions. Both are needed; for a
        symmetric app pass the same function twice. The flow is named after
        them (``"my_caller/my_callee"``, or the one name of a symmetric app).

    Raises
    ------
    TypeError
        A flow and app functions together, only one of caller/callee, or an
        app that is not an async function.
    KeyError
        An unknown flow name.

    Examples
    --------
    >>> async def my_app(app): ...
    >>> as_flow(caller=my_app, callee=my_app).name
    'my_app'
    >>> as_flow("basic").callee.__name__
    'basic_callee'
    """
    if caller is None and callee is None:
        return get_flow("basic" if flow is None else flow)
    if flow is not None:
        raise TypeError("give either a flow (a name or a Flow) or caller=/callee= app functions, not both")
    if caller is None or callee is None:
        missing = "callee" if callee is None else "caller"
        raise TypeError(
            f"{missing}= is missing: an own flow needs both apps"
            " (for a symmetric app, such as both sides calling at once, pass the same function twice)"
        )
    _check_app("caller", caller)
    _check_app("callee", callee)
    cname, ename = (getattr(fn, "__name__", type(fn).__name__) for fn in (caller, callee))
    name = cname if caller is callee else f"{cname}/{ename}"
    return Flow(name, "your own flow", caller, callee)


# --------------------------------------------------------------------------------------
# Small pieces shared by the apps (each is what the sample apps do inline).
# --------------------------------------------------------------------------------------


def send_candidates(app: App, pc: Peer, *, end_of_candidates: bool = True) -> None:
    """Trickle: forward every local candidate, then end-of-candidates (``None``)."""

    def on_icecandidate(candidate: dict[str, Any] | None) -> None:
        if candidate is None and not end_of_candidates:
            return
        app.send({"type": "new-ice-candidate", "target": app.other, "candidate": candidate})

    pc.on("icecandidate", on_icecandidate)


async def send_offer_on_negotiationneeded(app: App, pc: Peer) -> None:
    """The offer is made when the browser says negotiation is needed, not before."""

    async def on_negotiationneeded() -> None:
        await pc.setLocalDescription(await pc.createOffer())
        app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})

    pc.on("negotiationneeded", on_negotiationneeded)


class CandidateQueue:
    """Holds candidates that arrive before the remote description, then adds them.

    This is the article's "accept candidates as soon as possible": nothing that
    arrives early is thrown away.
    """

    def __init__(self) -> None:
        self.pc: Peer | None = None
        self.waiting: list[dict[str, Any] | None] = []

    async def add(self, candidate: dict[str, Any] | None) -> None:
        if self.pc is None or self.pc.remoteDescription is None:
            self.waiting.append(candidate)  # too early: keep it
        else:
            await self.pc.addIceCandidate(candidate)

    async def flush(self, pc: Peer) -> None:
        self.pc = pc
        while self.waiting:
            await pc.addIceCandidate(self.waiting.pop(0))


# --------------------------------------------------------------------------------------
# basic: the textbook call
# --------------------------------------------------------------------------------------


async def basic_caller(app: App) -> None:
    """Caller: add the camera, offer on negotiationneeded, trickle candidates."""
    pc = app.RTCPeerConnection()
    send_candidates(app, pc)
    await send_offer_on_negotiationneeded(app, pc)

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])
        elif msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)  # -> negotiationneeded -> offer


async def basic_callee(app: App) -> None:
    """Callee: on an offer, create the peer connection, add the camera, answer."""
    pc = None

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer":
            pc = app.RTCPeerConnection()
            send_candidates(app, pc)
            await pc.setRemoteDescription(msg["sdp"])
            for track in app.getUserMedia():
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])  # pc is None if this overtook the offer
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


# --------------------------------------------------------------------------------------
# mdn: the MDN "Signaling and video calling" sample, as written
# --------------------------------------------------------------------------------------


async def mdn_app(app: App) -> None:
    """The MDN sample's page (``chatclient.js``), one function for both sides, as written.

    Both sides add their camera with ``addTransceiver`` (never reused, unlike
    ``addTrack``), both have an ``onnegotiationneeded`` handler, candidates are
    sent without end-of-candidates and added without a queue, errors are only
    logged, and the call is closed on ``disconnected``. The callee adds its
    transceiver while it answers, so its own ``negotiationneeded`` then fires and
    it renegotiates right after its answer; if that re-offer reaches the caller
    before the answer is applied, the sample's glare branch mishandles it (a
    race Chromium shows too). (The sample asks for audio and video; the lab's
    camera is video only.)
    """
    my: dict[str, Any] = {"pc": None, "webcam": None}  # myPeerConnection, webcamStream

    def handle_ice_candidate_event(candidate: dict[str, Any] | None) -> None:
        if candidate:  # the sample never sends end-of-candidates
            app.send({"type": "new-ice-candidate", "target": app.other, "candidate": candidate})

    async def handle_negotiation_needed_event() -> None:
        pc = my["pc"]
        try:
            offer = await pc.createOffer()
            if pc.signalingState != "stable":
                return  # "The connection isn't stable yet; postponing..."
            await pc.setLocalDescription(offer)
            app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})
        except Exception as err:
            app.report_error(err)

    async def handle_ice_connection_state_change_event() -> None:
        pc = my["pc"]
        if pc is not None and pc.iceConnectionState in ("closed", "failed", "disconnected"):
            await close_video_call()  # the sample hangs up on a transient "disconnected" too

    async def close_video_call() -> None:
        pc, my["pc"] = my["pc"], None
        if pc is not None:
            await pc.close()  # (the sample stops each transceiver first; close() stops them all)

    def create_peer_connection() -> Any:
        pc = my["pc"] = app.RTCPeerConnection()
        pc.on("icecandidate", handle_ice_candidate_event)
        pc.on("iceconnectionstatechange", handle_ice_connection_state_change_event)
        pc.on("negotiationneeded", handle_negotiation_needed_event)
        return pc

    async def handle_video_offer_msg(msg: dict[str, Any]) -> None:
        pc = my["pc"] or create_peer_connection()
        if pc.signalingState != "stable":  # the sample's glare branch: roll back, apply, stop
            await asyncio.gather(pc.setLocalDescription({"type": "rollback"}), pc.setRemoteDescription(msg["sdp"]))
            return
        await pc.setRemoteDescription(msg["sdp"])
        if my["webcam"] is None:
            my["webcam"] = app.getUserMedia()
            for track in my["webcam"]:
                pc.addTransceiver(track)  # a new transceiver: negotiation needed once stable
        await pc.setLocalDescription(await pc.createAnswer())
        app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})

    async def handle_video_answer_msg(msg: dict[str, Any]) -> None:
        try:
            await my["pc"].setRemoteDescription(msg["sdp"])
        except Exception as err:
            app.report_error(err)

    async def handle_new_ice_candidate_msg(msg: dict[str, Any]) -> None:
        # No check that the peer connection exists: a candidate that overtakes
        # the offer fails here, and the sample only logs the error.
        try:
            if my["pc"] is None:  # in JavaScript: TypeError, myPeerConnection is null
                raise TypeError("Cannot read properties of null (reading 'addIceCandidate')")
            await my["pc"].addIceCandidate(msg["candidate"])
        except Exception as err:
            app.report_error(err)

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-offer":
            await handle_video_offer_msg(msg)
        elif msg["type"] == "video-answer":
            await handle_video_answer_msg(msg)
        elif msg["type"] == "new-ice-candidate":
            await handle_new_ice_candidate_msg(msg)
        elif msg["type"] == "hang-up":
            await close_video_call()

    app.on_message(on_message)
    if app.actor == "caller":  # invite(): the user clicked the callee's name
        pc = create_peer_connection()
        my["webcam"] = app.getUserMedia()
        for track in my["webcam"]:
            pc.addTransceiver(track)


# --------------------------------------------------------------------------------------
# answer-on-click: the timing trap
# --------------------------------------------------------------------------------------


async def answer_on_click_callee(app: App) -> None:
    """The callee rings and creates its peer connection only when the user clicks Answer."""
    pc = None

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer":
            await app.user.answer()  # ring ... the user thinks ... clicks Answer
            pc = app.RTCPeerConnection()  # only now
            send_candidates(app, pc)
            await pc.setRemoteDescription(msg["sdp"])
            for track in app.getUserMedia():
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            if pc is None:
                return  # nothing to add it to yet: this candidate is lost
            await pc.addIceCandidate(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


async def queue_on_click_callee(app: App) -> None:
    """The callee creates its peer connection on the click, but keeps every early candidate.

    The rule the timing trap breaks is "never drop a candidate", not "create
    the connection at once": a candidate may only be *added* after
    ``setRemoteDescription``, so one that arrives earlier is held and added
    then. Waiting for the click costs time (ICE starts only then) but reveals
    none of the callee's addresses to a caller it has not accepted.
    """
    pc = None
    queue = CandidateQueue()

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer":
            await app.user.answer()  # ring ... the user thinks ... clicks Answer
            pc = app.RTCPeerConnection()  # only now, as in answer-on-click
            send_candidates(app, pc)
            await pc.setRemoteDescription(msg["sdp"])
            await queue.flush(pc)  # ... but the candidates that came meanwhile are all added
            for track in app.getUserMedia():
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])  # held until the remote description is set
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


# --------------------------------------------------------------------------------------
# offer-before-tracks: offering too early
# --------------------------------------------------------------------------------------


async def offer_before_tracks_caller(app: App) -> None:
    """The caller offers right away on Call, then adds its camera: the offer has no media."""
    pc = app.RTCPeerConnection()
    send_candidates(app, pc)

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])
        elif msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])

    app.on_message(on_message)
    await pc.setLocalDescription(await pc.createOffer())  # nothing to offer yet
    app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})
    for track in app.getUserMedia():
        pc.addTrack(track)  # negotiationneeded fires, but nobody listens


# --------------------------------------------------------------------------------------
# counteroffer: early answer, media pre-negotiated and gated until the user accepts
# --------------------------------------------------------------------------------------


async def counteroffer_caller(app: App) -> None:
    """The caller negotiates its camera at once but sends nothing until the callee accepts.

    The offer carries a ``sendrecv`` video section, so the browser negotiates
    everything up front; ``replaceTrack(None)`` keeps the camera off the wire
    (the app's gate; ``track.muted`` is the browser's business, not the app's).
    ``call-accepted`` puts the camera back with ``replaceTrack``: no
    renegotiation. ``call-declined`` ends the call.
    """
    pc = app.RTCPeerConnection()
    queue = CandidateQueue()
    # No end-of-candidates: if the signaling path reorders, a candidate that
    # arrives after it would be ignored.
    send_candidates(app, pc, end_of_candidates=False)
    await send_offer_on_negotiationneeded(app, pc)
    camera = app.getUserMedia()[0]
    sender = pc.addTrack(camera)  # -> negotiationneeded -> offer with a sendrecv video section
    await pc.replaceTrack(sender, None)  # gated: nothing is sent before the callee accepts

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            if pc.signalingState != "have-local-offer":
                return  # a duplicated answer: already applied
            await pc.setRemoteDescription(msg["sdp"])
            await queue.flush(pc)
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])
        elif msg["type"] == "call-accepted":
            await pc.replaceTrack(sender, camera)  # the callee said yes: now send
        elif msg["type"] == "call-declined":
            await pc.close()
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


async def counteroffer_callee(app: App) -> None:
    """Peer connection and answer at once; on the click, accept and put the camera on.

    This is the article's "counter-offer" in offer/answer terms: an early
    *answer* (RFC 3264: the answer concludes the negotiation) plus
    application-level accept/decline messages. ICE and DTLS connect while the
    phone rings, so answering is quick, but the callee's addresses reach any
    caller before the user has said yes (RFC 8828); the article's own flow
    (``article``) adds the camera with ``addTrack`` and renegotiates instead.
    """
    pc = None
    queue = CandidateQueue()

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer":
            if pc is not None:
                return  # a duplicated offer
            pc = app.RTCPeerConnection()  # at once, before the user decides
            send_candidates(app, pc, end_of_candidates=False)
            await pc.setRemoteDescription(msg["sdp"])
            await queue.flush(pc)  # candidates that came early are not lost
            video = next((t for t in pc.getTransceivers() if t.kind == "video"), None)
            if video is None:  # (JavaScript's find() gives undefined: check before using it)
                app.reject(msg, "the offer has no video section")
                return
            video.direction = "sendrecv"  # room for our camera, nothing sent yet
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            if await app.user.decide() == "decline":  # ICE and DTLS connect while the phone rings
                app.send({"type": "call-declined", "target": app.other})  # the app's message, not WebRTC's
                await pc.close()
                return
            camera = app.getUserMedia()[0]
            await pc.replaceTrack(video.sender, camera)  # the gate opens on our side ...
            app.send({"type": "call-accepted", "target": app.other})  # ... and on the caller's
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


# --------------------------------------------------------------------------------------
# article: the article's own flow (answer at once without media, Answer adds the camera)
# --------------------------------------------------------------------------------------


async def article_caller(app: App) -> None:
    """The caller: offers on negotiationneeded, and answers the callee's re-offer when it comes."""
    pc = app.RTCPeerConnection()
    queue = CandidateQueue()  # the callee's candidates may overtake its answer
    send_candidates(app, pc, end_of_candidates=False)  # the article's code (MDN's) sends no end-of-candidates
    await send_offer_on_negotiationneeded(app, pc)

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])
            await queue.flush(pc)
        elif msg["type"] == "video-offer":  # the callee clicked Answer: its camera is offered
            await pc.setRemoteDescription(msg["sdp"])
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)  # -> negotiationneeded -> offer


async def article_callee(app: App) -> None:
    """The callee: peer connection and answer (no media) at once; Answer adds the camera."""
    pc = None
    queue = CandidateQueue()  # "accept ICE candidates as soon as possible": none is dropped

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer" and pc is None:
            pc = app.RTCPeerConnection()  # as soon as the offer arrives
            send_candidates(app, pc, end_of_candidates=False)
            await send_offer_on_negotiationneeded(app, pc)  # for the Answer step below
            await pc.setRemoteDescription(msg["sdp"])
            await queue.flush(pc)
            await pc.setLocalDescription(await pc.createAnswer())  # the "counter-offer": recvonly, no camera
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            await app.user.answer()  # ICE and DTLS connect while the phone rings
            for track in app.getUserMedia():
                pc.addTrack(track)  # reuses the recvonly transceiver -> negotiationneeded -> our offer
        elif msg["type"] == "video-offer":  # a later offer from the caller
            await pc.setRemoteDescription(msg["sdp"])
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "video-answer":  # the caller's answer to our camera offer
            await pc.setRemoteDescription(msg["sdp"])
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


# --------------------------------------------------------------------------------------
# ice-restart: a call that recovers when its path breaks
# --------------------------------------------------------------------------------------


async def ice_restart_caller(app: App) -> None:
    """The textbook caller that rides out ``disconnected`` and restarts ICE on ``failed``.

    ``disconnected`` is left alone: it often heals by itself when consent
    responses come back. ``failed`` is watched on ``connectionState``, because
    after a cut Chromium's ``iceConnectionState`` stays ``disconnected``. The
    caller restarts (it made the first offer, so the restart offer cannot
    collide with one from the callee).
    """
    pc = app.RTCPeerConnection()
    send_candidates(app, pc)
    await send_offer_on_negotiationneeded(app, pc)  # also sends the restart offer

    def on_connectionstatechange() -> None:
        if pc.connectionState == "failed":
            pc.restartIce()  # new credentials and candidates -> negotiationneeded -> offer

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])
        elif msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    pc.on("connectionstatechange", on_connectionstatechange)
    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)


async def ice_restart_callee(app: App) -> None:
    """The textbook callee that answers a later offer (the restart) on the same connection."""
    pc = None

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer":
            first = pc is None
            if first:
                pc = app.RTCPeerConnection()
                send_candidates(app, pc)
            await pc.setRemoteDescription(msg["sdp"])  # a restart offer: new ufrag -> we restart too
            if first:
                for track in app.getUserMedia():
                    pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


# --------------------------------------------------------------------------------------
# relay-until-accepted: counteroffer whose callee shows only its TURN server's address
# --------------------------------------------------------------------------------------


async def relay_caller(app: App) -> None:
    """The counteroffer caller, which also answers the callee's ICE-restart offer."""
    pc = app.RTCPeerConnection()
    queue = CandidateQueue()
    send_candidates(app, pc, end_of_candidates=False)
    await send_offer_on_negotiationneeded(app, pc)
    camera = app.getUserMedia()[0]
    sender = pc.addTrack(camera)
    await pc.replaceTrack(sender, None)  # gated until call-accepted, as in counteroffer

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            if pc.signalingState != "have-local-offer":
                return  # a duplicated answer
            await pc.setRemoteDescription(msg["sdp"])
            await queue.flush(pc)
        elif msg["type"] == "video-offer":  # the callee restarts ICE with every candidate type
            await pc.setRemoteDescription(msg["sdp"])
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])
        elif msg["type"] == "call-accepted":
            await pc.replaceTrack(sender, camera)
        elif msg["type"] == "call-declined":
            await pc.close()
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


async def relay_callee(app: App) -> None:
    """Counteroffer's callee, relay-only until the user accepts; then all candidates.

    ``iceTransportPolicy: "relay"`` makes the browser gather only relay
    candidates: a caller the user never accepts learns the TURN server's
    address and nothing of the callee's own. After the click the app allows
    every candidate type again; the new policy applies from the next
    gathering (W3C ``setConfiguration``), so it restarts ICE, which the
    callee negotiates with an offer of its own.
    """
    pc = None
    queue = CandidateQueue()

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal pc
        if msg["type"] == "video-offer" and pc is None:
            pc = app.RTCPeerConnection({"iceTransportPolicy": "relay"})  # only the TURN server's address leaves
            send_candidates(app, pc, end_of_candidates=False)
            await pc.setRemoteDescription(msg["sdp"])
            await queue.flush(pc)
            video = next((t for t in pc.getTransceivers() if t.kind == "video"), None)
            if video is None:
                app.reject(msg, "the offer has no video section")
                return
            video.direction = "sendrecv"
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            if await app.user.decide() == "decline":  # the call connects through the relay while it rings
                app.send({"type": "call-declined", "target": app.other})
                await pc.close()
                return
            await pc.replaceTrack(video.sender, app.getUserMedia()[0])
            app.send({"type": "call-accepted", "target": app.other})
            await send_offer_on_negotiationneeded(app, pc)  # for the restart below
            pc.setConfiguration({"iceTransportPolicy": "all"})  # accepted: a direct path is welcome now ...
            pc.restartIce()  # ... from the next gathering on -> negotiationneeded -> our offer
        elif msg["type"] == "video-offer":
            await pc.setRemoteDescription(msg["sdp"])
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "video-answer":  # the caller's answer to our restart offer
            await pc.setRemoteDescription(msg["sdp"])
        elif msg["type"] == "new-ice-candidate":
            await queue.add(msg["candidate"])
        else:
            app.reject(msg, "unknown message type")

    app.on_message(on_message)


# --------------------------------------------------------------------------------------
# vanilla: no trickle
# --------------------------------------------------------------------------------------


async def vanilla_caller(app: App) -> None:
    """Vanilla ICE: wait until gathering is complete, send one SDP with every candidate."""
    pc = app.RTCPeerConnection()
    gathered = asyncio.Event()
    pc.on("icegatheringstatechange", lambda: pc.iceGatheringState == "complete" and gathered.set())

    async def on_negotiationneeded() -> None:
        await pc.setLocalDescription(await pc.createOffer())
        await gathered.wait()
        app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])

    pc.on("negotiationneeded", on_negotiationneeded)
    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)


async def vanilla_callee(app: App) -> None:
    """Answer with one SDP, sent only when gathering is complete."""

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-offer":
            pc = app.RTCPeerConnection()
            gathered = asyncio.Event()
            pc.on("icegatheringstatechange", lambda: pc.iceGatheringState == "complete" and gathered.set())
            await pc.setRemoteDescription(msg["sdp"])
            for track in app.getUserMedia():
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            await gathered.wait()
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})

    app.on_message(on_message)


# --------------------------------------------------------------------------------------
# glare and perfect negotiation
# --------------------------------------------------------------------------------------


async def glare_app(app: App) -> None:
    """Both users click Call at once; each side runs the naive basic caller."""
    if app.actor == "callee":
        app.user.call()
    pc = app.RTCPeerConnection()
    send_candidates(app, pc)
    await send_offer_on_negotiationneeded(app, pc)

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-offer":  # naive: answer whatever comes in
            await pc.setRemoteDescription(msg["sdp"])
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])  # too late: we are stable again
        elif msg["type"] == "new-ice-candidate":
            await pc.addIceCandidate(msg["candidate"])

    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)


async def perfect_app(app: App) -> None:
    """MDN's perfect negotiation; the callee is the polite peer. Both call at once."""
    polite = app.actor == "callee"
    if polite:
        app.user.call()
    pc = app.RTCPeerConnection()
    making_offer = False
    ignore_offer = False
    send_candidates(app, pc)

    async def on_negotiationneeded() -> None:
        nonlocal making_offer
        try:
            making_offer = True
            await pc.setLocalDescription()
            app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})
        finally:
            making_offer = False

    async def on_message(msg: dict[str, Any]) -> None:
        nonlocal ignore_offer
        if msg["type"] in ("video-offer", "video-answer"):
            description = msg["sdp"]
            offer_collision = description["type"] == "offer" and (
                making_offer or pc.signalingState != "stable")
            ignore_offer = not polite and offer_collision
            if ignore_offer:
                return
            if description["type"] == "answer" and pc.signalingState == "stable":
                return  # a duplicated answer
            await pc.setRemoteDescription(description)  # polite: rolls back implicitly
            if description["type"] == "offer":
                await pc.setLocalDescription()
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
        elif msg["type"] == "new-ice-candidate":
            try:
                await pc.addIceCandidate(msg["candidate"])
            except Exception:
                if not ignore_offer:
                    raise  # only errors for an ignored offer's candidates are expected

    pc.on("negotiationneeded", on_negotiationneeded)
    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)


# --------------------------------------------------------------------------------------
# forgot-candidates: the missing onicecandidate handler
# --------------------------------------------------------------------------------------


async def forgot_candidates_caller(app: App) -> None:
    """The basic caller without an icecandidate handler: no candidate ever leaves."""
    pc = app.RTCPeerConnection()
    await send_offer_on_negotiationneeded(app, pc)

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-answer":
            await pc.setRemoteDescription(msg["sdp"])

    app.on_message(on_message)
    for track in app.getUserMedia():
        pc.addTrack(track)


async def forgot_candidates_callee(app: App) -> None:
    """The basic callee without an icecandidate handler."""

    async def on_message(msg: dict[str, Any]) -> None:
        if msg["type"] == "video-offer":
            pc = app.RTCPeerConnection()
            await pc.setRemoteDescription(msg["sdp"])
            for track in app.getUserMedia():
                pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
            app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})

    app.on_message(on_message)


FLOWS: dict[str, Flow] = {
    f.name: f
    for f in (
        Flow("basic", "textbook call: offer on negotiationneeded, answer on offer, trickle both ways",
             basic_caller, basic_callee),
        Flow("mdn", "the MDN sample as written: addTransceiver on both sides, callee renegotiates, "
             "no candidate queue, no end-of-candidates, hangs up on disconnected",
             mdn_app, mdn_app),
        Flow("answer-on-click", "callee creates its peer connection only when the user clicks Answer",
             basic_caller, answer_on_click_callee),
        Flow("offer-before-tracks", "caller offers before adding its tracks: nothing to negotiate",
             offer_before_tracks_caller, basic_callee),
        Flow("counteroffer", "early answer with media pre-negotiated and gated (replaceTrack) until "
             "the callee accepts (call-accepted)", counteroffer_caller, counteroffer_callee),
        Flow("vanilla", "no trickle: wait for gathering, send one complete SDP each way",
             vanilla_caller, vanilla_callee),
        Flow("glare", "both sides call at once with naive code",
             glare_app, glare_app),
        Flow("perfect", "MDN perfect negotiation (polite callee, impolite caller) under glare",
             perfect_app, perfect_app),
        Flow("forgot-candidates", "both apps forget the icecandidate handler: no candidate is ever sent",
             forgot_candidates_caller, forgot_candidates_callee),
        Flow("queue-on-click", "callee creates its peer connection on the click and queues early candidates",
             basic_caller, queue_on_click_callee),
        Flow("article", "the article's flow: answer at once without media, Answer adds the camera (callee re-offers)",
             article_caller, article_callee),
        Flow("ice-restart", "textbook call that rides out disconnected and calls restartIce() when "
             "connectionState fails", ice_restart_caller, ice_restart_callee),
        Flow("relay-until-accepted", "counteroffer with a relay-only callee until the user accepts "
             "(only the TURN server's address is exposed), then an ICE restart with every candidate",
             relay_caller, relay_callee),
    )
}


def get_flow(name: str | Flow) -> Flow:
    """The flow called ``name``; a clear ``KeyError`` lists the known ones.

    A :class:`Flow` object (a learner's own) is returned as it is.
    """
    if isinstance(name, Flow):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a flow is a name (see rtclab.FLOWS) or an rtclab.Flow, got {type(name).__name__}")
    try:
        return FLOWS[name]
    except KeyError:
        raise KeyError(f"unknown flow {name!r}; known flows: {', '.join(FLOWS)}") from None
