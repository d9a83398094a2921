from build import code, md

CELLS = [
    md("""
    # 3 · The timing trap

    **Overview.** The article's main point is that everything in WebRTC is asynchronous:
    the moment the caller sends its offer, its candidates start following it, whether or
    not the other side is ready for them. This notebook shows three ways that bites:

    1. an app that creates the callee's peer connection only when the user clicks
       *Answer* loses every candidate that arrived before the click;
    2. a signaling channel that delays and reorders messages lets a candidate overtake the
       offer (or the answer), and the MDN sample's code then throws;
    3. the browser's rule behind one of those errors: `addIceCandidate` before
       `setRemoteDescription` is an `InvalidStateError`, while a candidate that arrives
       when the remote description has been *asked for* is fine, because the browser runs
       the calls one after another.

    **Time.** About 25 minutes.

    **Prerequisites.** Notebook 01 (the event table, candidate refs, `plots.candidates`).
    """),
    code("""
    %matplotlib inline
    import inspect

    import rtclab
    from rtclab import plots
    """),
    md("""
    ## Answering on click

    A natural way to write the callee: when the offer arrives, ring; when the user clicks
    *Answer*, create the peer connection, apply the offer and answer. The caller is the
    textbook one from notebook 01. Look at what the callee does with a candidate that comes
    in while the phone is still ringing:
    """),
    code("""
    print(rtclab.flow_source("answer-on-click"))
    """),
    md("""
    With the default think time (the user clicks *Answer* about a second after the offer
    arrives), the caller's candidates have long been delivered by then. They reach a page
    that has no peer connection to give them to, and they are dropped:
    """),
    code("""
    click = rtclab.run("answer-on-click")
    click.events.query("kind == 'ice' and name == 'candidate' and value == 'lost'")[["t_ms", "actor", "ref", "detail"]]
    """),
    md("""
    `plots.candidates` shows it at a glance. Each row is one candidate; the vertical lines
    mark, for each side, when its peer connection was created (dashed) and when its
    remote description was set (dotted). The caller's candidates are delivered far to the
    left of the callee's lines: they arrive before there is anything to add them to.
    """),
    code("""
    ax = plots.candidates(click)
    """),
    md("""
    The metrics count the loss. `candidates_lost` counts candidates only: the table above
    also has a `lost` row for the caller's end-of-candidates message (its `ref` ends in
    `:end`), which is a signal that no more candidates will come, not a candidate. And
    yet, on this flat network, the call still connects:
    """),
    code("""
    click.metrics[["outcome", "candidates_gathered", "candidates_delivered", "candidates_lost", "candidates_added"]]
    """),
    md("""
    The callee never learned a single caller candidate, but the caller learned the
    callee's, started checking, and its checks reached the callee directly. Notebook 04
    explains this rescue (a *peer-reflexive* candidate) and shows it fail as soon as
    there is a NAT in the way. The article's fix, creating the peer connection as soon
    as the offer arrives, is notebook 05. The rule behind it is "never drop a candidate":
    a callee that waits for the click but queues the early candidates (`queue-on-click`,
    notebooks 11 and 14) connects too.

    ## When messages overtake each other

    A signaling server is just another network service: messages take time, and that time
    varies. We now run the MDN sample (`mdn`) through a channel with 50 ms latency, up to
    40 ms of jitter, and a one-in-two chance that a message is held back so that a later
    one overtakes it. The MDN callee, like the answer-on-click one, has no peer connection
    until the offer arrives, and its candidate handler does not check for that:
    """),
    code("""
    print(rtclab.flow_source("mdn", helpers=False))
    """),
    md("""
    Ten calls with different seeds, same settings. `candidates_lost` counts candidates
    that reached the callee before its peer connection existed; `candidates_rejected`
    counts candidates that a peer connection refused with an error.
    """),
    code("""
    async_signaling = dict(signaling_latency_ms=50, jitter_ms=40, reorder=0.5)
    calls = rtclab.sweep("mdn", trials=10, seed=0, progress=False, workers=1, **async_signaling)
    calls[["seed", "outcome", "candidates_added", "candidates_lost", "candidates_rejected", "errors"]]
    """),
    md("""
    Most calls look fine from the outside, but several of them logged errors on the way.
    Let us replay one that has both a lost and a rejected candidate and list its `error`
    rows:
    """),
    code("""
    seed = int(calls.query("candidates_lost > 0 and candidates_rejected > 0")["seed"].iloc[0])
    overtaken = rtclab.run("mdn", seed=seed, **async_signaling)
    overtaken.events.query("kind == 'error'")[["t_ms", "actor", "name", "value", "detail"]]
    """),
    md("""
    Two different errors, both caused by order alone:

    * On the **callee**, a caller candidate arrived before the offer. The sample's
      `handleNewICECandidateMsg` calls `myPeerConnection.addIceCandidate` while
      `myPeerConnection` is still `null`: in JavaScript that is a `TypeError`, which the
      sample catches and only logs (`app` rows are what the app's `reportError` logged).
    * On the **caller**, a callee candidate overtook the answer. The caller's peer
      connection exists, but it has no remote description yet, so `addIceCandidate` fails
      with `InvalidStateError`: the browser rule from the overview. rtclab emulates it
      (aiortc itself would only log a warning).

    The sequence diagram shows the crossings: candidate arrows that reach a lane before the
    offer or answer arrow they followed, and the errors marked where they happened.
    """),
    code("""
    ax = plots.sequence(overtaken)
    """),
    md("""
    Here the order of arrival is the whole story: the errors appear at the moments the
    reordered messages are delivered. Because the MDN sample only logs them, the call goes
    on with whatever candidates made it, and on this flat network that is usually enough.
    Not always: one of the ten calls above did not connect.
    """),
    code("""
    calls.query("outcome != 'connected'")[["seed", "outcome", "reason", "candidates_added", "candidates_lost", "candidates_rejected"]]
    """),
    md("""
    Its `reason` names the first error in the frame, which is not the whole story. The
    call did not fail fast: nothing connected, and the run went on until its deadline
    (90 virtual seconds). `rtclab.diagnose` reads the whole frame and lists what went
    wrong, most important first. Here the sample's second negotiation is the culprit: the
    callee's new offer overtook its own answer, the caller took it for glare (it still had
    its offer out), rolled back, and then the late answer met a connection that no longer
    expected one. Notebook 07 is about glare; the candidates lost on the way are this
    notebook's subject.
    """),
    code("""
    stuck = rtclab.run("mdn", seed=int(calls.query("outcome != 'connected'")["seed"].iloc[0]), **async_signaling)
    for finding in rtclab.diagnose(stuck):
        print(f"[{finding.severity}] {finding.title}")
    """),
    md("""

    ## The operations chain: early is not always too early

    The `InvalidStateError` rule is about the remote description not having been *set*.
    A browser does not run `setRemoteDescription`, `createAnswer`, `setLocalDescription`
    and `addIceCandidate` the moment they are called: it queues them on the peer
    connection's *operations chain* and runs them one after another
    ([W3C spec, "chain an operation"](https://www.w3.org/TR/webrtc/#dfn-chain-an-operation)).
    So an `addIceCandidate` issued after `setRemoteDescription` was called, while it is
    still in progress, simply waits its turn and succeeds. rtclab's `Peer` emulates the
    chain (aiortc runs each call at once).

    To see it, we make the signaling server very fast (`signaling_latency_ms=2`): the answer
    then reaches the caller while the caller's peer connection is still busy, so its
    `setRemoteDescription` is pending for a few milliseconds. (Here it is pending because
    aiortc is still gathering the caller's own candidates; in a browser the reasons and
    the durations differ, but the rule is the same.) A callee candidate arrives in that
    window. These are the caller's rows for the answer and for the callee's candidates:
    """),
    code("""
    chained = rtclab.run("basic", signaling_latency_ms=2)
    rows = "actor == 'caller' and (name in ['video-answer', 'setRemoteDescription'] or ref.str.startswith('callee:'))"
    chained.table().query(rows)[["t_ms", "name", "value", "ref"]]
    """),
    md("""
    Read the times: the answer is delivered; a callee candidate is delivered *before*
    `setRemoteDescription` has completed, and the caller's message handler passes it to
    `addIceCandidate` straight away (the `basic` caller does not wait for anything). That
    call waits on the chain, completes right after `setRemoteDescription`, and succeeds. Nothing in this call was rejected and no error was logged:
    """),
    code("""
    chained.metrics[["outcome", "candidates_added", "candidates_rejected", "errors"]]
    """),
    md("""
    The lesson for app code: once you have *called* `setRemoteDescription`, you may call
    `addIceCandidate` without waiting for it. What you must not do is call it when there is
    no peer connection yet, or when nobody has asked for a remote description at all. For
    those candidates you need a queue (notebook 05).

    Both browser rules, checked in Chromium 156: the conformance suite stored what it did
    when a candidate was added with no remote description (the error, word for word, is
    the one rtclab records), and when one was added while `setRemoteDescription` was
    still pending (both calls succeeded, in call order):
    """),
    code("""
    early = rtclab.data.chromium_trace("RTCPeerConnection-addIceCandidate/before-remote-description")
    print(early.query("kind == 'error'")[["name", "value", "detail"]].to_string(index=False))
    pending = rtclab.data.chromium_trace("RTCPeerConnection-addIceCandidate/during-setRemoteDescription")
    print(" → ".join(pending.query("kind == 'call' and name in ['setRemoteDescription', 'addIceCandidate']")["name"]))
    """),
    md("""
    ## Fix the code

    The callee below answers on click, like `answer-on-click`, but is written the way the
    MDN sample handles candidates: it calls `addIceCandidate` on its peer connection
    whatever happens. While the phone rings there is no peer connection yet, so every
    early candidate raises (in JavaScript: `TypeError`, reading a property of `null`).

    **Edit the cell** so that no candidate is lost, while still creating the peer
    connection only when the user clicks *Answer*. The check plays the textbook caller
    against your callee (the user thinks for one second), on a LAN and behind NATs, and
    passes when every call connects **and** no candidate was lost. As given, it fails, and
    the verdict points at the line of your code that raised:
    """),
    code("""
    async def my_callee(app):
        pc = None

        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                await app.user.answer()  # ring... the user clicks Answer
                pc = app.RTCPeerConnection()  # only now is there a peer connection
                pc.on("icecandidate", lambda candidate: app.send(
                    {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))
                await pc.setRemoteDescription(msg["sdp"])
                for track in app.getUserMedia():
                    pc.addTrack(track)
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        app.on_message(on_message)
    """),
    code("""
    rtclab.exercises.check_03(my_callee)
    """),
    md("""
    On the LAN the calls still connect (peer-reflexive candidates, notebook 04), which is
    why the check also counts lost candidates. Hint: keep what arrives too early in a list
    and add it once `setRemoteDescription` has been called. The solution is in notebook 10.
    """),
    md("""
    ## Summary

    * Candidates start moving as soon as the offer is sent. A callee that creates its peer
      connection only when the user answers loses every candidate that came earlier
      (`candidates_lost`; the crosses in `plots.candidates`).
    * Signaling is asynchronous too: with delay and reordering, a candidate can overtake
      the offer (the MDN callee's `TypeError`) or the answer (`InvalidStateError` at the
      caller). Whether the call survives depends on which candidates are left.
    * `addIceCandidate` before a remote description is an `InvalidStateError` in
      browsers (emulated by rtclab); after `setRemoteDescription` has been *called* it is
      fine, because calls on one peer connection run in order.

    **Try this**

    1. Re-run `answer-on-click` with `answer_delay_ms=0`. Are candidates still lost? Look at
       `plots.candidates` and explain with the `t_ms` of the offer and the candidates.
    2. Sweep `mdn` with `reorder=0` but the same latency and jitter. How many errors are
       left? (With `reorder=0` rtclab's channel keeps each direction in order, as a
       single WebSocket does, whatever the jitter.)
    3. Replay the call that did not connect (`rtclab.run("mdn", seed=..., **async_signaling)`)
       and find its last `iceConnectionState` on each side.
    """),
]
