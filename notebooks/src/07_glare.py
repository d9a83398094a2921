from build import code, md

CELLS = [
    md("""
    # 7 · Glare and perfect negotiation

    **Overview.** So far one side called and the other answered. What if both users
    click *Call* at the same moment? Each page creates an offer, and each receives
    the other's offer while waiting for an answer to its own. This is called
    *glare*. In this notebook you will

    * see the naive code fail with `InvalidStateError`, and find the rows that say why,
    * read MDN's *perfect negotiation* pattern (`perfect` flow) and watch it connect,
    * find the two moves that make it work: the polite peer's rollback and the
      impolite peer's ignored offer,
    * run it over an asynchronous signaling channel for several seeds.

    **Time.** About 20 minutes.

    **Prerequisites.** 01 (the signaling state machine: `stable`, `have-local-offer`,
    `have-remote-offer`) and 02 (offers made on `negotiationneeded`).
    """),
    code("""
    %matplotlib inline
    import rtclab
    """),
    md("""
    ## Naive code under glare

    The `glare` flow runs the textbook caller on *both* pages, with one addition:
    whoever receives an offer answers it, whatever state it is in. Both users click
    *Call* at time 0.
    """),
    code("""
    glare = rtclab.run("glare")
    print(glare.outcome, "-", glare.reason)
    """),
    md("""
    Follow the signaling state of each peer. Each goes to `have-local-offer` with its
    own offer. When the other's offer arrives, the (emulated) browser rolls the local
    offer back implicitly, as current browsers do, applies the remote offer
    (`have-remote-offer`), and the page answers (`stable`). Both are now `stable`,
    each having answered the other.
    """),
    code("""
    glare.events.query("kind == 'state' and name == 'signalingState' and value != 'closed'")[["t_ms", "actor", "value", "prev"]]
    """),
    md("""
    Then the answers to the two original offers arrive. Those offers no longer exist,
    and an answer in `stable` is an error: `setRemoteDescription` raises
    `InvalidStateError` on both sides. The candidates are mixed up as well: each side
    has sent candidates of the connection it rolled back (port 50000) and of the one
    that replaced it (port 50001), and the other side adds them all to one connection.
    Exercise 7.1 shows what a slower channel adds to this.
    """),
    code("""
    errors = glare.events.query("kind == 'error' and name != 'onmessage'")
    print(errors[["t_ms", "actor", "name", "value", "ref"]].to_string(index=False))
    print(*errors["detail"].unique(), sep="\\n")
    """),
    md("""
    The call never recovers. Each side now holds a remote offer it answered and an
    answer it refused, so the two ICE agents check pairs that never answer, and both
    connections give up 15 seconds after checking began: the time Chromium 156 takes
    for pairs that never answer (rtclab follows it; notebook 08 is about such timeouts):
    """),
    code("""
    glare.events.query("kind == 'state' and name == 'connectionState' and value in ['connected', 'failed']")[["t_ms", "actor", "value"]]
    """),
    md("""
    ## Perfect negotiation

    MDN's [perfect negotiation](https://developer.mozilla.org/en-US/docs/Web/API/WebRTC_API/Perfect_negotiation)
    gives the two peers different roles. The *polite* peer (here the callee) gives way
    when offers collide: it lets its own offer be rolled back and answers the other's.
    The *impolite* peer (the caller) ignores an offer that collides with its own and
    waits for its answer. Each page tracks `making_offer` (true while its own offer is
    being made) and `ignore_offer`; a colliding offer is one that arrives while
    `making_offer` or outside `stable`. Candidate errors are swallowed only while an
    offer is being ignored: they belong to the offer nobody will answer.
    """),
    code("""
    print(rtclab.flow_source("perfect"))
    """),
    code("""
    perfect = rtclab.run("perfect")
    print(perfect.outcome, "-", perfect.reason)
    """),
    md("""
    In the diagram both offers cross at the start; one answer comes back, to the
    caller's offer, and the call connects.
    """),
    code("""
    fig = perfect.plot()
    """),
    md("""
    **The polite peer rolls back.** When the caller's offer reaches the callee in
    `have-local-offer`, `setRemoteDescription` first rolls the callee's own offer
    back. Here is that row:
    """),
    code("""
    perfect.events.query("kind == 'call' and name == 'rollback'")[["t_ms", "actor", "kind", "name", "value", "detail"]]
    """),
    md("""
    A word on how this is done. aiortc, unlike a browser, has no working rollback (see
    the README's "rtclab vs a browser" table). For an *initial* offer rtclab emulates it
    by closing the aiortc connection, creating a new one and re-adding the tracks, which
    is why the `detail` mentions re-added transceivers, and why the callee then gathers
    and sends a second set of candidates (new ports) in the diagram. That second set is
    not an artifact: Chromium 156 does the same after rolling back its initial offer (a
    new ICE ufrag, gathering from scratch), as its stored trace shows. (Rolling back a
    *re*-negotiation during an established call keeps the call up, in Chromium and in
    rtclab; notebook 11.)
    """),
    code("""
    fresh = rtclab.data.chromium_trace("RTCPeerConnection-setRemoteDescription-rollback/initial-offer-fresh-ice")
    print(fresh.query("actor == 'caller' and kind == 'state' and name in ['signalingState', 'iceGatheringState']")["value"].tolist())
    print(fresh.query("name.str.startswith('observe')", engine="python")[["name", "value"]].to_string(index=False))
    """),
    md("""

    **The impolite peer ignores the colliding offer.** The callee's offer is
    delivered to the caller, and nothing follows: the caller calls
    `setRemoteDescription` only once, with the answer to its own offer.
    """),
    code("""
    perfect.events.query("actor == 'caller' and name in ['video-offer', 'video-answer', 'setRemoteDescription'] and value != 'sent'")[["t_ms", "actor", "name", "value", "ref"]]
    """),
    md("""
    The errors that remain are the callee's early candidates, from its rolled-back
    offer, reaching the caller while it ignores that offer. The code expects them and
    carries on; they are recorded, but they do not stop the call:
    """),
    code("""
    perfect.events.query("kind == 'error'")[["t_ms", "actor", "name", "value", "ref"]]
    """),
    md("""
    ## Perfect negotiation on an asynchronous channel

    Glare is a race, so the exact timing matters. Let the signaling channel delay
    each message by 50 ms plus up to 40 ms of random jitter, with in-order delivery
    per direction (like a WebSocket), and try ten seeds:
    """),
    code("""
    jittery = rtclab.sweep("perfect", trials=10, signaling_latency_ms=50, jitter_ms=40, progress=False)
    jittery["outcome"].value_counts()
    """),
    md("""
    Now let the channel also *reorder* messages (`reorder=0.5`: half of them are held
    back and may be overtaken), so that a candidate can arrive before the offer it
    belongs to:
    """),
    code("""
    shuffled = rtclab.sweep("perfect", trials=10, signaling_latency_ms=50, jitter_ms=40, reorder=0.5, progress=False)
    shuffled.groupby(["outcome", "reason"]).size()
    """),
    md("""
    If some of these runs fail, read their reason. MDN's pattern rethrows a candidate
    error unless an offer is being ignored; a candidate that overtakes the offer
    reaches a peer with no remote description, so `addIceCandidate` raises
    `InvalidStateError` and that candidate is gone. Perfect negotiation resolves
    glare; it does not replace the candidate queue of notebook 05, and it assumes a
    signaling channel that keeps each sender's messages in order, as a WebSocket does.

    """),
    md("""
    ## Fix the code

    The app below is the naive one of the `glare` flow: the same code on both sides, and
    both users click *Call* at once (the callee's side says so with `app.user.call()`). It
    answers any offer and applies any answer.

    **Edit the cell** into MDN's perfect negotiation: one side polite (here the callee,
    `app.actor == "callee"`), the other impolite. The check runs your app on both sides,
    on a LAN and behind NATs, and passes when every call connects (candidates that belong
    to an offer the impolite side ignored are expected to be refused, so they are not
    counted). As given, it fails:
    """),
    code("""
    async def my_app(app):
        if app.actor == "callee":
            app.user.call()  # both users click Call
        pc = app.RTCPeerConnection()
        pc.on("icecandidate", lambda candidate: app.send(
            {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))

        async def on_negotiationneeded():
            await pc.setLocalDescription(await pc.createOffer())
            app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})

        async def on_message(msg):
            if msg["type"] == "video-offer":
                await pc.setRemoteDescription(msg["sdp"])
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "video-answer":
                await pc.setRemoteDescription(msg["sdp"])
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        pc.on("negotiationneeded", on_negotiationneeded)
        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)
    """),
    code("""
    rtclab.exercises.check_07(my_app)
    """),
    md("""
    The verdict names the line where the late answer met a peer that was `stable` again.
    MDN's [Perfect negotiation](https://developer.mozilla.org/en-US/docs/Web/API/WebRTC_API/Perfect_negotiation)
    page has the pattern: `makingOffer`, `ignoreOffer`, and `setLocalDescription()` with
    no argument. The solution is in notebook 10.
    """),
    md("""
    ## Summary

    * Glare: both sides offer at once. Naive code answers everything, and the late
      answers meet `stable`: `InvalidStateError`, and the call fails.
    * Perfect negotiation: a polite peer rolls back and answers, an impolite peer
      ignores the colliding offer; the call connects.
    * rtclab emulates the rollback of an initial offer by re-creating the aiortc
      connection; like Chromium, it then gathers again with new ICE credentials.
    * The pattern handles delayed and jittery signaling; check the reordering sweep
      above for what happens when messages can overtake each other.

    **Try this**

    1. Run `glare` with a much slower signaling channel (`signaling_latency_ms=500`).
       Does the race still happen? (Both clicks are still at time 0.)
    2. In `perfect`, which side's video arrives first, and why? Look at
       `perfect.metrics[["t_first_frame_caller_ms", "t_first_frame_callee_ms"]]`.
    3. Run `perfect` behind NATs (`topology="nat"`). Does the rollback change which
       candidates the caller finally uses (`selected_pair`)?
    4. Combine the candidate queue of notebook 05 with perfect negotiation (on paper):
       where would the queue go in `perfect_app`?
    """),
]
