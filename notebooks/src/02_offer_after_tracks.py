from build import code, md

CELLS = [
    md("""
    # 2 · Offer after your tracks

    **Overview.** The article's first piece of advice: do not send an offer until the
    tracks have been added. The place to make the offer is the `negotiationneeded` event,
    which the browser fires once `addTrack` (or `addTransceiver`) has changed what there is
    to negotiate. Here you will run two callers side by side, one that offers too early and
    one that waits for `negotiationneeded`, and see in the event table what each offer
    contained, when `negotiationneeded` fired, and what came of each call.

    **Time.** About 15 minutes.

    **Prerequisites.** Notebook 01 (the event table, the state machines). MDN:
    [`negotiationneeded`](https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/negotiationneeded_event)
    and [`createOffer`](https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/createOffer).
    """),
    code("""
    %matplotlib inline
    import inspect

    import pandas as pd

    import rtclab
    from rtclab import data, plots
    """),
    md("""
    ## Two callers

    The **too-early** caller (`offer-before-tracks`) creates its peer connection and makes
    the offer straight away, then gets the camera and adds the track. The callee is the
    ordinary one from notebook 01.
    """),
    code("""
    print(rtclab.flow_source("offer-before-tracks"))
    """),
    md("""
    The **textbook** caller (`basic`) adds its track first and makes the offer inside the
    `negotiationneeded` handler. In rtclab's flows that handler lives in a small shared
    function, printed here below the flow itself:
    """),
    code("""
    print(rtclab.flow_source("basic").split("async def basic_callee")[0])
    print(inspect.getsource(rtclab.flows.send_offer_on_negotiationneeded))
    """),
    md("""
    The order is what the article insists on: `addTrack` first; the browser then fires
    `negotiationneeded`; the handler does `createOffer`, `setLocalDescription` and sends
    the offer.

    ## What each offer contained

    We run both flows with the same seed. The `detail` column of the `createOffer`,
    `createAnswer` and description rows carries a summary of the SDP: the media sections
    it negotiates (`m=[...]`) and how many candidates it embeds (none here: candidates
    are trickled separately, see notebook 01).
    """),
    code("""
    runs = {flow: rtclab.run(flow, seed=1) for flow in ["offer-before-tracks", "basic"]}
    sdp_rows = "name in ['createOffer', 'createAnswer', 'setRemoteDescription']"
    runs["offer-before-tracks"].events.query(sdp_rows)[["t_ms", "actor", "name", "detail"]]
    """),
    md("""
    `m=[]`: the early offer has **no media section at all**. When `createOffer` ran, the
    peer connection had no track and no transceiver, so there was nothing to put in the
    offer. The callee adds its camera before answering, but an answer can only accept or
    refuse what the offer proposed, so the answer is empty too. Compare with the textbook
    caller, whose offer has a `video` section:
    """),
    code("""
    runs["basic"].events.query(sdp_rows)[["t_ms", "actor", "name", "detail"]]
    """),
    md("""
    ## When `negotiationneeded` fires

    Here are the `negotiationneeded` rows of both calls. In rtclab this event is an
    emulation: aiortc never fires it, so rtclab's `Peer` fires it by the browser's rules
    (after `addTrack`/`addTransceiver`, only when the signaling state is `stable`, several
    changes coalesced into one event).
    """),
    code("""
    nn = pd.concat({flow: r.events.query("name == 'negotiationneeded'") for flow, r in runs.items()})
    nn[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    In `basic` it fires **once**, on the caller, right after `addTrack`, and its handler
    makes the offer. The callee's `addTrack` happens while it answers an offer that already
    has a video section, so the answer carries the track and nothing more needs
    negotiating.

    Both rules come from Chromium, not from aiortc. Two stored Chromium 156 traces show
    them: a page that adds a microphone and a camera in one go gets a single
    `negotiationneeded`, and a Chromium callee playing the `basic` callee against rtclab's
    caller adds its camera while it answers and gets none:
    """),
    code("""
    rows = ["addTrack", "negotiationneeded", "setRemoteDescription", "setLocalDescription"]
    two_tracks = data.chromium_trace("RTCPeerConnection-onnegotiationneeded/two-addTrack-one-event")
    as_callee = data.chromium_trace("basic-browser-callee").query("actor == 'callee'")
    pd.concat({"two addTrack calls": two_tracks.query("name in @rows"),
               "Chromium as the basic callee": as_callee.query("name in @rows")})[["t_ms", "actor", "name", "value", "detail"]]
    """),
    md("""

    In `offer-before-tracks` it fires **after** the offer, on both sides, and nobody is
    listening. Look at the times. The caller added its track while it was in
    `have-local-offer`; the browser's rule is to wait until the signaling state is `stable`
    again, which happens only when the (empty) answer comes back. The callee's track could
    not go into an answer to an offer without media, so its `negotiationneeded` fires as
    soon as it is back in `stable`. A browser would tell both apps "there is something new
    to negotiate"; these apps have no handler, so the event is lost and no second offer is
    ever made. The caller's own rows show the order: the offer is sent before the track is
    added.
    """),
    code("""
    early = runs["offer-before-tracks"].events
    early.query("actor == 'caller' and kind in ['call', 'signal']")[["t_ms", "name", "value", "detail"]]
    """),
    md("""
    ## The outcome

    With no media section, no transport is set up: not a single candidate is gathered
    (`iceGatheringState` never leaves `new`), ICE never starts, and the call ends with
    nothing negotiated. rtclab calls that outcome
    `no-media`. The textbook caller connects and media flows both ways.
    """),
    code("""
    cols = ["outcome", "reason", "candidates_gathered", "t_connected_ms", "t_first_frame_ms"]
    pd.DataFrame({flow: r.metrics[cols] for flow, r in runs.items()})
    """),
    md("""
    ## The same steps in Chromium

    Everything this notebook said about the early offer (no media section in the offer
    or the answer, `negotiationneeded` held back until `stable`, no gathering, no ICE) is
    rtclab's emulation of a browser on top of aiortc, so it has to be checked against a
    browser. The conformance suite (`python -m rtclab.conformance`) played the same steps
    in Chromium 156 and stored the frame: two peer connections in one page on loopback,
    the descriptions handed from one to the other directly (no signaling server),
    candidates wired both ways. The caller makes its offer with no track and then adds
    its camera; the callee applies the offer, adds its camera and answers; the caller
    applies the answer. The calls the page made and what it read (`observe` rows; the
    page waited 300 ms after the caller's `addTrack` before counting its
    `negotiationneeded` events):
    """),
    code("""
    chromium = data.chromium_trace("RTCPeerConnection-onnegotiationneeded/addTrack-after-empty-offer")
    steps = "kind == 'call' and name not in ['RTCPeerConnection', 'steps-done', 'close']"
    chromium.query(steps)[["t_ms", "actor", "name", "value", "detail"]]
    """),
    md("""
    The same story as rtclab's: `m=[]` in the offer and in the answer; no
    `negotiationneeded` on the caller while it sat in `have-local-offer`, one right after
    the answer brought it back to `stable`; one on the callee right after its own answer.
    Side by side, the state machines (rtclab's `offer-before-tracks` call on the left,
    Chromium on the right): in both, gathering, ICE and the connection stay `new` on both
    peers until the page closes them. The time axes differ (rtclab's signaling takes 20 ms
    per message; the Chromium page passed descriptions directly but paused to observe).
    """),
    code("""
    fig = plots.beside(runs["offer-before-tracks"], chromium, plot="states",
                       titles=("rtclab: offer-before-tracks", "Chromium 156: addTrack after an empty offer"))
    """),
    md("""
    In a browser the symptom is therefore the same: an "it connects but I see nothing"
    call, or, as here, one where nothing happens at all after the answer. There is no
    error message to search for, which is what makes this mistake hard to find.
    """),
    md("""
    ## Fix the code

    Your turn to write app code. The cell below holds a caller written the way rtclab's
    flows are written: an `async def` that receives the page's `app` and uses only what a
    web page has (`app.RTCPeerConnection()` for `new RTCPeerConnection()`,
    `app.getUserMedia()`, `app.send` and `app.on_message` for the signaling socket; see
    `help(rtclab.App)`). It makes this notebook's mistake: it offers before adding its
    camera.

    **Edit the cell** so that the offer is made at the right moment, run it, then run the
    check below it. The check plays your caller against the textbook callee on the
    simulated network, three seeds on a flat LAN and three behind NATs, and prints how
    the calls ended and PASS or FAIL. As given, the code fails:
    """),
    code("""
    async def my_caller(app):
        pc = app.RTCPeerConnection()
        pc.on("icecandidate", lambda candidate: app.send(
            {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))

        async def on_message(msg):
            if msg["type"] == "video-answer":
                await pc.setRemoteDescription(msg["sdp"])
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        app.on_message(on_message)
        await pc.setLocalDescription(await pc.createOffer())  # the offer, right away
        app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})
        for track in app.getUserMedia():
            pc.addTrack(track)
    """),
    code("""
    rtclab.exercises.check_02(my_caller)
    """),
    md("""
    `rtclab.run(caller=my_caller, callee=rtclab.flows.basic_callee)` plays one of these
    calls so you can read its event table or plot it. Hint: the browser tells the app when
    an offer is worth making (`pc.on("negotiationneeded", handler)`). The solution is in
    notebook 10.
    """),
    md("""
    ## Summary

    * An offer describes what the peer connection has **at the moment `createOffer` runs**.
      Created before `addTrack`, it offers nothing (`m=[]`), and the answer cannot add media.
    * `negotiationneeded` is the browser telling you when an offer is worth making. Make the
      offer in its handler, as the `basic` flow does.
    * A track added in the middle of an offer/answer exchange does not get lost silently in a
      browser: `negotiationneeded` fires again once the state is `stable`. The app has to
      listen to it.

    **Try this**

    1. Run `offer-before-tracks` with `topology="nat"`. Does the network make any difference
       to a call that negotiates nothing?
    2. In the `offer-before-tracks` run, look for `iceGatheringState` rows and count the
       gathered candidates. What do you find, and does Chromium's trace above agree?
    3. In the `basic` run, the callee calls `addTrack` too. Why does that not fire
       `negotiationneeded` on the callee? (Hint: look at its `signalingState` when it calls
       `addTrack`, and at the offer's `m=[...]`.)
    """),
]
