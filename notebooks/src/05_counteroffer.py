from build import code, md

CELLS = [
    md("""
    # 5 · Offer, counter-offer, answer

    **Overview.** The article's fix in one sentence: *createAnswer is not the user
    answering the call*. The callee's page creates its peer connection the moment an
    offer arrives, replies at once with an answer (the article calls it a
    "counter-offer"), keeps every candidate that shows up early, and lets the user's
    **Answer** click add the camera.

    A word on that term. In SDP offer/answer (RFC 3264) an *answer* concludes the
    negotiation; a provisional one would be a `pranswer`. What the article describes is
    an **early answer** plus the application's own "I accept" message, which WebRTC
    leaves to the app. The `counteroffer` flow here sends that message
    (`call-accepted`) and keeps media off the wire until it arrives. It is one of two
    ways to do the *Answer* step: it pre-negotiates the callee's camera and switches it
    on with `replaceTrack`. The article's own way, adding the camera with `addTrack` and
    renegotiating, is the `article` flow. In this notebook you will

    * read the `counteroffer` flow's app code,
    * see it connect on a flat LAN and behind two NATs, where `answer-on-click` fails,
    * measure how long the person who clicks *Answer* waits for the picture
      (`answer_to_media_ms`), for both flows and several signaling latencies,
    * check that it survives a signaling channel that reorders messages.

    **Time.** About 25 minutes.

    **Prerequisites.** 01 (anatomy of a call), 03 (the timing trap: `answer-on-click`)
    and 04 (why a NAT turns the trap into a failure).
    """),
    code("""
    %matplotlib inline
    import rtclab
    from rtclab import plots
    """),
    md("""
    ## The fix in code

    The listing below starts with the small helpers the flows share (forwarding
    candidates, offering on `negotiationneeded`, and `CandidateQueue`), then the
    caller's half and the callee's half. Read the callee's half first. When a
    `video-offer` arrives the page,
    *before* asking its user anything:

    1. creates the peer connection and starts forwarding its own candidates,
    2. applies the offer, then adds the candidates that were waiting in a queue
       (`CandidateQueue`: anything that overtook the offer is kept, not dropped),
    3. opens the video transceiver for sending (`sendrecv`) without a camera yet, and
       sends its answer: the counter-offer.

    Only then does it ring (`await app.user.answer()`). When the user clicks
    *Answer*, the page gets the camera, puts it on the already negotiated sender with
    `replaceTrack` and sends `call-accepted`: no new offer, no new answer, no new
    candidates. The caller's half is the textbook caller plus the same queue, for
    candidates that overtake the answer, and a gate: its camera is negotiated in the
    offer but taken off the sender (`replaceTrack(None)`) until `call-accepted`
    arrives, so nothing of the caller's camera reaches a callee who has not accepted.
    (`track.muted` is not that gate: the browser sets it on a *received* track, muted
    until its first packet arrives. An app gates what it sends with `replaceTrack`,
    the transceiver's direction, or `track.enabled`.)
    """),
    code("""
    print(rtclab.flow_source("counteroffer"))
    """),
    md("""
    Note also the comment about end-of-candidates in both halves; the last section
    of this notebook comes back to it.

    ## It connects, with or without NAT

    One call of each flow on each topology. `rtclab.sweep` with one trial per
    combination is a compact way to get them all as a table. Remember from
    notebook 04 that `answer-on-click` only connects on the LAN because the callee
    learns the caller's address from its incoming connectivity checks
    (a peer-reflexive candidate); behind NATs nothing rescues it.
    """),
    code("""
    calls = rtclab.sweep(["counteroffer", "answer-on-click"], trials=1,
                         grid={"topology": ["lan", "nat"]}, progress=False)
    print(calls[["flow", "topology", "outcome", "reason"]].to_string(index=False))
    """),
    md("""
    `counteroffer` connects on both topologies; `answer-on-click` connects only on the
    LAN. Now the timing columns: when each call connected, when the user clicked
    *Answer* (the think time, `answer_delay_ms`, is the same for both flows), and how
    long after that click the slower side saw its first remote frame.
    """),
    code("""
    print(calls[["flow", "topology", "t_connected_ms", "t_answer_click_ms", "answer_to_media_ms"]].round().to_string(index=False))
    """),
    md("""
    Compare `t_connected_ms` with `t_answer_click_ms`: the counter-offer call is
    connected *before* the user clicks, the `answer-on-click` call only starts
    connecting *after* the click. That difference is what the rest of this notebook
    measures.

    ## What happens when the user clicks Answer

    The sequence diagram of one `counteroffer` call behind NATs: offer, answer and
    candidates all cross the channel in the first few tens of milliseconds; ICE and
    DTLS then connect while the phone is still ringing, and the *Answer* click comes
    long after.
    """),
    code("""
    co = rtclab.run("counteroffer", topology="nat")
    fig = co.plot()
    """),
    md("""
    Every signaling message of that call was sent before the click. Answering sends
    none:
    """),
    code("""
    co.events.query("kind == 'signal' and value == 'sent'")[["t_ms", "actor", "name"]]
    """),
    md("""
    After the click there are only a few local calls and one `call-accepted`
    message, then media:
    """),
    code("""
    click = co.metrics["t_answer_click_ms"]
    co.events.query("t_ms >= @click and kind in ['user', 'call', 'media'] and name != 'close'")[["t_ms", "actor", "kind", "name", "value"]]
    """),
    md("""
    `answer_to_media_ms` is measured per side. The caller sees the callee's camera
    once the callee's `replaceTrack` reaches its sender and the first frame crosses
    the network; the callee sees the caller's camera one signaling trip later, when
    `call-accepted` has opened the caller's gate.
    """),
    code("""
    co.metrics[["t_answer_click_ms", "answer_to_media_caller_ms", "answer_to_media_callee_ms", "answer_to_media_ms"]]
    """),
    md("""
    For contrast, the `answer-on-click` call on the LAN: after the click the callee
    still has to create its peer connection, answer, trickle its candidates and run
    ICE and DTLS, and every one of those steps shows up on the right of the diagram.
    """),
    code("""
    aoc = rtclab.run("answer-on-click")
    fig = aoc.plot()
    """),
    code("""
    aoc.metrics[["t_answer_click_ms", "answer_to_media_caller_ms", "answer_to_media_callee_ms", "answer_to_media_ms"]]
    """),
    md("""
    ## Answering speed against signaling latency

    If answering needs a signaling round trip, a slower signaling server makes
    answering slower. A small sweep on the LAN (where both flows connect): three
    trials per flow and per one-way signaling latency.
    """),
    code("""
    speed = rtclab.sweep(["counteroffer", "answer-on-click"], trials=3,
                         grid={"signaling_latency_ms": [10, 50, 200]}, progress=False, workers=1)
    speed["outcome"].value_counts()
    """),
    md("""
    The median time from the *Answer* click to media, in milliseconds, per flow and
    latency:
    """),
    code("""
    speed.pivot_table(index="flow", columns="signaling_latency_ms",
                      values="answer_to_media_ms", aggfunc="median").round()
    """),
    md("""
    Read the table along each row. Both waits grow with the signaling latency, by about
    one one-way trip: after the click, one message still has to cross. For
    `answer-on-click` it is the answer, which the caller needs before ICE can start; for
    `counteroffer` it is `call-accepted`, which opens the caller's gate. What differs is
    everything else: `answer-on-click` still has to run ICE and DTLS after the click,
    `counteroffer` did that while the phone rang. On this LAN that set-up takes only a
    few tens of milliseconds, so the rows are close; over a slower media path the gap
    grows (exercise 3). The same data as a plot, one
    box per flow and latency (`hue=`); under each box, how many of its trials had a
    value out of how many ran:
    """),
    code("""
    ax = plots.compare(speed, metric="answer_to_media_ms", hue="signaling_latency_ms")
    """),
    md("""
    ## When the signaling channel reorders messages

    The article warns that the signaling system is asynchronous too: "you really
    can't rely on anything happening in a certain order". Here the channel delays
    each message by 50 ms plus up to 40 ms of jitter, and holds back half of them so
    that later messages may overtake them (`reorder=0.5`). A candidate can then reach
    the callee before the offer, or the caller before the answer; the queue keeps it
    until the description is there.
    """),
    code("""
    rough = rtclab.sweep("counteroffer", trials=10, signaling_latency_ms=50,
                         jitter_ms=40, reorder=0.5, progress=False)
    rough["outcome"].value_counts()
    """),
    md("""
    Every seed connects. Whatever the order of arrival, every candidate that was
    delivered was eventually added (early ones wait in the queue); none was lost
    or rejected:
    """),
    code("""
    rough[["candidates_delivered", "candidates_added", "candidates_lost", "candidates_rejected"]].sum()
    """),
    md("""
    Why no end-of-candidates? A reordering channel can deliver the end-of-candidates
    message before the last candidate. RFC 8838 (section 14) says an agent *ignores*
    a candidate of the same generation that arrives after end-of-candidates (it is
    never an error); Chromium 156 accepts such a candidate and even uses it, and so does
    rtclab (its rows say `late`). Chromium's stored trace of exactly that (end-of-candidates
    first, then the candidates):
    """),
    code("""
    late = rtclab.data.chromium_trace("RTCPeerConnection-addIceCandidate/after-end-of-candidates")
    print(late.query("actor == 'callee' and name in ['addIceCandidate', 'connectionState']")[["name", "value", "detail"]].to_string(index=False))
    """),
    md("""
    Either way a reordered end-of-candidates can at worst cost a candidate, and leaving
    it out costs nothing while the call connects: ICE simply keeps listening for more
    candidates. (Notebook 08 shows what happens when the call can't connect.)
    """),
    md("""
    ## Fix the code

    The callee below is a counter-offer callee: peer connection and answer as soon as the
    offer arrives; when the user answers, its camera goes on and it sends
    `call-accepted`. It has no candidate queue. On an
    in-order signaling path that is enough; on one that reorders, a candidate can arrive
    before the offer, when there is no peer connection yet.

    **Edit the cell** so that early candidates are kept and added later. The check plays
    the `counteroffer` caller against your callee with 40 ms of jitter and 30 % reordering
    on the signaling path, on a LAN and behind NATs, and passes when every call connects
    with no candidate lost. As given, it fails:
    """),
    code("""
    async def my_callee(app):
        pc = None

        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                if pc is not None:
                    return  # a duplicated offer
                pc = app.RTCPeerConnection()
                pc.on("icecandidate", lambda candidate: candidate and app.send(
                    {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))
                await pc.setRemoteDescription(msg["sdp"])
                video = next(t for t in pc.getTransceivers() if t.kind == "video")
                video.direction = "sendrecv"  # room for our camera, nothing sent yet
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
                await app.user.answer()
                await pc.replaceTrack(video.sender, app.getUserMedia()[0])  # our camera on ...
                app.send({"type": "call-accepted", "target": app.other})  # ... and the caller's
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        app.on_message(on_message)
    """),
    code("""
    rtclab.exercises.check_05(my_callee)
    """),
    md("""
    `rtclab.flows.CandidateQueue` is the queue the built-in `counteroffer` callee uses
    (`rtclab.flow_source("counteroffer")` prints it); you may use it or write your own.
    The solution is in notebook 10.
    """),
    md("""
    ## Summary

    * *Offer, counter-offer, answer*: the callee creates its peer connection and
      answers as soon as the offer arrives; the user's *Answer* only adds the camera
      (`replaceTrack`) and tells the caller (`call-accepted`), whose own camera stays
      off the wire until then. In offer/answer terms the "counter-offer" is an early
      answer plus the app's own accept message.
    * It connects where `answer-on-click` fails (behind NATs), because no candidate
      arrives while there is no peer connection to take it.
    * Answering does not wait for ICE and DTLS: they finished while the phone rang (as
      long as the user thinks longer than the connection takes to set up; exercise 3
      explores a slow media path). What remains is the media path and one signaling
      trip for `call-accepted`.
    * A candidate queue makes the flow indifferent to the order in which signaling
      messages arrive.

    The simulated network is a model, and rtclab's peers are aiortc with browser
    behaviour emulated (see the README's "rtclab vs a browser" table); the
    comparison between the two flows, not the exact milliseconds, is the lesson.

    **Try this**

    1. Run `rtclab.run("counteroffer", topology="nat", nat="symmetric")`. Does it still
       connect? What does `turn=True` change? (Compare with notebook 04.)
    2. Raise the think time: `rtclab.run("counteroffer", answer_delay_ms=10_000)`.
       Does `answer_to_media_ms` change? Why not?
    3. Sweep `link_latency_ms` instead of `signaling_latency_ms` for both flows. Which
       part of `answer_to_media_ms` does the media path account for?
    4. Run the reordering sweep with `"basic"` instead of `"counteroffer"` and read
       the `reason` column of the failures.
    """),
]
