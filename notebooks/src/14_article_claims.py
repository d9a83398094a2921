from build import code, md

CELLS = [
    md("""
    # 14 · The article, claim by claim

    **Overview.** The article this course follows
    ([scottiestech.info, 2021](https://scottiestech.info/2021/09/14/why-your-webrtc-calls-arent-working-timing-is-everything/))
    makes about fifteen claims about how a WebRTC call comes together. Most of them hold;
    some hold only once a detail is corrected; a few do not hold as written. This notebook
    takes them one at a time: what the article says (in our words), the verdict, and the
    run that shows it, rtclab's and, where the claim is about what a browser does, the
    stored Chromium 156 trace of the same steps. The last section collects the verdicts in
    one table.

    **Time:** about 30 minutes. **Prerequisites:** notebooks 01 to 08 and 11 (each claim
    points to the notebook that treats it at length).

    Verdicts: **holds**, **holds with a correction**, **does not hold** (as written).
    """),
    code("""
    %matplotlib inline
    import pandas as pd
    import rtclab
    from rtclab import data, plots

    verdicts = []
    def verdict(number, claim, verdict, run):
        verdicts.append({"#": number, "claim": claim, "verdict": verdict, "shown by": run})
        print(f"claim {number}: {verdict}")
    """),
    md("""
    ## 1. Don't send an offer before a track (or transceiver) is added

    *The article:* nothing should go to the other side until `addTrack` or
    `addTransceiver` has been called.

    The `offer-before-tracks` flow makes its offer first and adds the camera after: the
    offer has no media section, so nothing is negotiated and no media can flow.
    """),
    code("""
    early = rtclab.run("offer-before-tracks")
    print(early.outcome, "-", early.reason)
    verdict(1, "offer only after addTrack/addTransceiver", "holds", "offer-before-tracks: no-media; basic: connected")
    """),
    md("""
    ## 2. `addTrack` fires `negotiationneeded`; make the offer in its handler

    *The article:* adding the track makes the browser fire `negotiationneeded`, and the
    handler is where `createOffer`, `setLocalDescription` and sending belong.

    The first caller rows of a `basic` call, next to the same rows from Chromium 156
    playing the caller's page (the stored `basic-browser-caller` trace):
    """),
    code("""
    first = "actor == 'caller' and name in ['addTrack', 'negotiationneeded', 'createOffer', 'setLocalDescription', 'video-offer']"
    print(rtclab.run("basic").events.query(first)["name"].tolist())
    print(data.chromium_trace("basic-browser-caller").query(first)["name"].tolist())
    verdict(2, "negotiationneeded after addTrack; offer in its handler", "holds", "basic, and Chromium's basic-browser-caller")
    """),
    md("""
    ## 3. The callee sets its local description, then the remote one, then creates the answer

    *The article:* the remote side creates its peer connection, sets its own local
    description, sets the remote description with the offer, then calls `createAnswer`
    and sends the answer.

    That order does not work. The callee must apply the offer first
    (`setRemoteDescription`), then create the answer and apply it locally
    (`setLocalDescription`), then send it. Here is the article's order taken literally,
    as a callee of our own next to the textbook caller:
    """),
    code("""
    async def literal_callee(app):
        pc = None
        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                pc = app.RTCPeerConnection()
                rtclab.flows.send_candidates(app, pc)
                await pc.setLocalDescription()              # local first: with nothing added, this makes an *offer*
                await pc.setRemoteDescription(msg["sdp"])   # the caller's offer rolls it back (as browsers do)
                answer = await pc.createAnswer()            # ... and the answer is never applied locally
                app.send({"type": "video-answer", "target": app.other, "sdp": answer})
            elif msg["type"] == "new-ice-candidate" and pc is not None:
                await pc.addIceCandidate(msg["candidate"])
        app.on_message(on_message)

    literal = rtclab.run(caller=rtclab.flows.basic_caller, callee=literal_callee)
    print(literal.outcome, "-", literal.reason)
    print(literal.events.query("actor == 'callee' and kind == 'state' and name == 'signalingState'")["value"].tolist())
    """),
    md("""
    The callee's early `setLocalDescription()` made an offer of its own (with no media),
    the caller's offer then rolled it back implicitly, and the callee ended in
    `have-remote-offer`: its answer was created and sent but never applied, so it never
    gathered a candidate and neither side ever started checking. Chromium rolls back the
    same way (stored trace `RTCPeerConnection-setRemoteDescription-rollback/implicit-on-remote-offer`).
    """),
    code("""
    verdict(3, "callee: setLocalDescription, setRemoteDescription, createAnswer", "does not hold",
            "the literal order never connects; SRD(offer) → createAnswer → SLD(answer) does")
    """),
    md("""
    ## 4. Candidates start flowing as soon as the offer is sent

    *The article:* the moment the caller has sent its offer, its browser may start sending
    candidates too.

    In fact they start at `setLocalDescription`, which comes just before the app sends
    the offer. In the `basic` call the first candidate follows the offer by a few
    milliseconds:
    """),
    code("""
    basic = rtclab.run("basic")
    sent = basic.events.query("actor == 'caller' and kind == 'signal' and value == 'sent'")
    print(sent[["t_ms", "name"]].head(3).to_string(index=False))
    verdict(4, "candidates follow the offer at once", "holds", "basic: the first candidate 5 ms after the offer")
    """),
    md("""
    ## 5. The callee has not accepted anything yet

    *The article:* when the candidates arrive, the callee's user has not decided to take
    the call.

    Signaling knows nothing of the user: the offer and the caller's candidates reach the
    callee long before its user clicks *Answer* (one second of think time here).
    """),
    code("""
    print("offer delivered at", basic.events.query("actor == 'callee' and name == 'video-offer' and value == 'delivered'")["t_ms"].iloc[0],
          "ms; in answer-on-click the user clicks at", rtclab.run("answer-on-click").metrics["t_answer_click_ms"], "ms")
    verdict(5, "candidates arrive before the callee accepts", "holds", "answer-on-click: offer at 20 ms, click at 1020 ms")
    """),
    md("""
    ## 6. On an offer, create the peer connection at once, or the call won't work

    *The article:* as soon as an offer arrives the callee must create its peer connection,
    even if it will not take the call, or it cannot accept candidates and the call fails.

    The failure is real: `answer-on-click` creates the connection on the click, drops the
    candidates that came before, and fails behind NATs (notebooks 03 and 04). But the rule
    that matters is *never drop a candidate*: `queue-on-click` also waits for the click
    and keeps the early candidates in a queue, and it connects everywhere. Creating the
    connection early buys speed (notebook 11); it costs privacy, because the callee's
    addresses then reach any caller (notebook 13).
    """),
    code("""
    grid = rtclab.sweep(["answer-on-click", "queue-on-click"], trials=1, grid={"topology": ["lan", "nat"]}, progress=False, workers=1)
    print(grid[["flow", "topology", "outcome", "candidates_lost"]].to_string(index=False))
    verdict(6, "create the peer connection when the offer arrives", "holds with a correction",
            "never drop a candidate: queue-on-click connects with none lost")
    """),
    md("""
    ## 7. The answer does not start the call; candidates follow it

    *The article:* after the callee sends its answer the call has not started; the callee
    now starts sending candidates too.

    In the `basic` call the callee's candidates leave right after its answer, and both
    peers report `connected` only after the connectivity checks:
    """),
    code("""
    rows = "actor == 'callee' and ((kind == 'signal' and value == 'sent') or (kind == 'state' and name == 'connectionState'))"
    print(basic.events.query(rows)[["t_ms", "name", "value"]].head(4).to_string(index=False))
    verdict(7, "the answer is followed by the callee's candidates; connecting comes later", "holds", "basic")
    """),
    md("""
    ## 8. `createAnswer` is a "counter-offer", not answering the call

    *The article:* the answer only says "let's negotiate", not "I accept".

    The idea holds, the word needs care. In SDP offer/answer (RFC 3264) the answer
    *concludes* a negotiation; a provisional one is a `pranswer`. Accepting the call is
    the application's business: WebRTC has no message for it, so a flow that answers
    early needs its own, like `counteroffer`'s `call-accepted`:
    """),
    code("""
    co = rtclab.run("counteroffer")
    print(co.events.query("kind == 'signal' and value == 'sent' and name not in ['new-ice-candidate']")[["t_ms", "actor", "name"]].to_string(index=False))
    verdict(8, "createAnswer is a counter-offer", "holds with a correction",
            "an early answer (RFC 3264) plus an app-level accept (call-accepted)")
    """),
    md("""
    ## 9. The caller's media is already sent, muted, until the callee answers

    *The article:* the (muted) stream is already reaching the callee, whose page simply
    does not show it until the user clicks *Answer*.

    An app cannot mute what it sends that way. `track.muted` is the browser's flag on a
    *received* track: muted until the first packet arrives, then `unmute` (rtclab and
    Chromium agree, stored trace `RTCPeerConnection-ontrack/muted-until-first-packet`).
    If the caller sends, the callee's browser receives it, whether or not the page shows
    it (rtclab's callee also decodes it; whether Chromium decodes video that no element
    renders was not measured). In the article's own flow the caller's frames reach the callee
    before the click; `counteroffer` gates them with `replaceTrack(None)` until the
    callee accepts:
    """),
    code("""
    for flow in ["article", "counteroffer"]:
        run = rtclab.run(flow)
        print(f"{flow:13} callee's first caller frame at {run.metrics['t_first_frame_callee_ms']} ms, click at {run.metrics['t_answer_click_ms']} ms")
    verdict(9, "the caller's stream is sent muted until the callee answers", "does not hold",
            "article: frames reach the callee before the click; gate with replaceTrack(null)/direction/enabled")
    """),
    md("""
    ## 10. The caller unmutes only when the callee accepts

    *The article:* the caller's page switches its media on once the remote side has
    accepted.

    Only with an accept message the caller can wait for. `counteroffer` has one and its
    caller opens its gate on `call-accepted` (claim 9's output); the `article` flow has
    none, and its caller sends from the moment ICE and DTLS are up.
    """),
    code("""
    verdict(10, "the caller unmutes when the callee accepts", "holds with a correction",
            "needs an app-level accept message (counteroffer), which the article's flow lacks")
    """),
    md("""
    ## 11. Answering adds the callee's tracks; new candidates are sent; it's instant

    *The article:* on *Answer* the callee adds its camera, which renegotiates; new ICE
    candidates are usually sent, but it all happens in the blink of an eye.

    The renegotiation happens (`article` flow, notebook 11), but it gathers **no** new
    candidates: both media sections share one transport (BUNDLE), as in Chromium 156
    (stored trace, `observe:new candidates 0`). It costs one signaling round trip, which
    is quick on a fast signaling server and not on a slow one (notebook 11).
    """),
    code("""
    art = rtclab.run("article")
    print(art.metrics[["messages_after_answer", "candidates_after_answer", "answer_to_media_ms"]].to_string())
    chrome = data.chromium_trace("RTCPeerConnection-onnegotiationneeded/callee-addTrack-after-answer")
    print(chrome.query("name == 'observe:new candidates'")[["actor", "value"]].to_string(index=False))
    verdict(11, "Answer adds tracks; new candidates; instant", "holds with a correction",
            "article and Chromium: one extra round trip, no new candidates (BUNDLE)")
    """),
    md("""
    ## 12. Bad timing is the number one reason calls fail

    *The article:* most broken WebRTC code is broken by timing.

    rtclab cannot count the world's bugs, but it can show that timing alone breaks the
    flows of this course: `answer-on-click` behind NATs, the MDN sample under a reordering
    channel, naive glare. It also shows failures that have nothing to do with timing:
    no `icecandidate` handler at all, and two symmetric NATs without TURN.
    """),
    code("""
    cases = {"answer-on-click, nat": rtclab.run("answer-on-click", topology="nat"),
             "glare": rtclab.run("glare"),
             "forgot-candidates": rtclab.run("forgot-candidates", deadline_s=30),
             "basic, symmetric NATs": rtclab.run("basic", topology="nat", nat="symmetric")}
    for name, run in cases.items():
        print(f"{name:22} {run.outcome:8} {run.reason}")
    verdict(12, "bad timing is the #1 reason", "holds with a correction",
            "timing breaks three flows here; missing handlers and NAT types break others")
    """),
    md("""
    ## 13. The signaling channel is asynchronous too: don't rely on order

    *The article:* whatever carries the signaling messages probably reorders them.

    With reordering, the MDN sample, which adds candidates as they come, logs errors and
    loses calls; the counter-offer flows, which queue early candidates, connect for every
    seed (notebooks 03 and 05).
    """),
    code("""
    shuffled = dict(signaling_latency_ms=50, jitter_ms=40, reorder=0.5)
    mixed = rtclab.sweep(["mdn", "counteroffer"], trials=10, progress=False, workers=1, **shuffled)
    print(mixed.groupby("flow")["outcome"].value_counts().unstack(fill_value=0).to_string())
    verdict(13, "signaling reorders: don't rely on order", "holds", "mdn loses calls; counteroffer connects every seed")
    """),
    md("""
    ## 14. You have a short time to add the candidates, or the browser closes the connection

    *The article:* there is only a short window to accept candidates with
    `addIceCandidate` on both sides; miss it and the browser closes the connection.

    Neither half holds for Chromium 156. A connection that never gets a candidate has no
    timer at all: both state machines stay `new` (stored trace
    `RTCPeerConnection-iceConnectionState/no-candidates-exchanged`). One whose candidates
    never answer goes `failed` about 15 seconds after checking starts
    (`RTCPeerConnection-connectionState/unreachable-candidate`), and even then the browser
    does not close it: `signalingState` stays `stable` until the app calls `close()`.
    rtclab's peers do the same:
    """),
    code("""
    quiet = rtclab.run("forgot-candidates", deadline_s=60)
    print(quiet.outcome, "-", quiet.reason)
    lost = rtclab.run("basic", link_loss=1.0, stun=False)
    print(lost.events.query("kind == 'state' and name in ['connectionState', 'signalingState'] and value in ['failed', 'closed']")[["t_ms", "actor", "name", "value"]].to_string(index=False))
    verdict(14, "a short window, then the browser closes the connection", "does not hold",
            "no candidates: stays new (Chromium: still new after 90 s); unreachable: failed after ~15 s, not closed")
    """),
    md("""
    The `closed` rows come at the end of the run, when rtclab's runner (the "app") closes
    both peers; `failed` comes first, 15 seconds after checking started. (Firefox, which
    this course does not run, is said to drop candidates that come more than a few seconds
    after the remote description; that is not measured here.)

    ## 15. Answering is fast because the set-up happened in the background

    *The article:* with everything negotiated while the phone rings, answering feels
    immediate.

    It holds where the set-up is the slow part, for example behind NATs: there the early
    flows answer in tens of milliseconds and `queue-on-click` waits for all of ICE and
    DTLS after the click (notebook 11 shows where a slow signaling server changes the
    picture).
    """),
    code("""
    nat = rtclab.sweep(["article", "counteroffer", "queue-on-click"], trials=1, topology="nat", progress=False, workers=1)
    print(nat[["flow", "answer_to_media_ms"]].round().to_string(index=False))
    verdict(15, "answering is fast when the set-up ran in the background", "holds", "behind NATs: ~70 ms vs ~600 ms")
    """),
    md("""
    ## 16. Creating the peer connection just says where the STUN/TURN servers are

    *The article:* `createPeerConnection()` only tells the browser where to find its
    servers.

    It does more, and less: it creates the ICE agent and the four state machines, but it
    contacts no server yet. Gathering (and so any contact with STUN or TURN) starts only
    at `setLocalDescription`, with the default `iceCandidatePoolSize` of 0 (a candidate
    pool, W3C `RTCConfiguration`, lets the browser gather earlier):
    """),
    code("""
    caller = basic.events.query("actor == 'caller' and name in ['RTCPeerConnection', 'setLocalDescription', 'iceGatheringState']")
    print(caller[["t_ms", "name", "value"]].to_string(index=False))
    verdict(16, "the peer connection only knows where the servers are", "holds with a correction",
            "gathering starts at setLocalDescription, not at construction")
    """),
    md("""
    ## All verdicts

    One row per claim, with the run that decides it:
    """),
    code("""
    table = pd.DataFrame(verdicts).set_index("#")
    print(table["verdict"].value_counts().to_string())
    with pd.option_context("display.max_colwidth", 70, "display.width", 200):
        print(table.to_string())
    """),
    md("""
    ## Summary

    The article's core is right: signaling and ICE run at the same time, candidates arrive
    before anyone is ready for them, and the callee must never lose one. Where it goes
    wrong, it goes wrong on details that matter when you write the code: the order of the
    callee's calls, what "muted" means, new candidates on renegotiation, and what a
    browser does when candidates are missing (nothing, for a very long time). Queuing
    candidates is the real rule; creating the peer connection early is one way to follow
    it, with a privacy cost.

    **Try this**

    1. Fix `literal_callee` from claim 3 (apply the offer, create the answer, apply it,
       send it) and check it with `rtclab.check(caller=rtclab.flows.basic_caller,
       callee=literal_callee)`.
    2. For claim 9, run the `article` flow with `answer_delay_ms=5000`: how many frames of
       the caller's camera could the callee's page have shown before its user decided?
       (`record_packets=True` and the `net` rows help.)
    3. For claim 13, keep the channel in order (`reorder=0`, jitter only): does the MDN
       sample still lose calls?
    """),
]
