from build import code, md

CELLS = [
    md("""
    # 11 · Answering the call: renegotiate, or switch on what was negotiated

    **Overview.** Once the callee's page has a peer connection and has answered the offer
    at once (notebook 05), something still has to happen when the person clicks
    *Answer*: their camera must reach the caller. There are two honest ways to do it,
    and this notebook runs both, next to each other and next to Chromium:

    * **the article's way** (`article` flow): the early answer carries no camera at all.
      On the click the page calls `addTrack`, the browser says negotiation is needed,
      and the *callee* makes a new offer that the caller answers: one more offer/answer
      round trip;
    * **pre-negotiation** (`counteroffer` flow): the early answer already makes room for
      the camera (`sendrecv`, no track yet). On the click the page puts the camera on the
      existing sender with `replaceTrack` and tells the caller `call-accepted`: no new
      negotiation.

    You will check what the renegotiation costs (messages, candidates, time), see that it
    gathers no new candidates, and compare both with the two flows that create the
    callee's connection only on the click (`queue-on-click`, `answer-on-click`). Last,
    because the click starts a negotiation in the middle of a call, you will make the
    caller change the call at the same moment: glare during an established call, first
    with the article's naive code, then with perfect negotiation's guard, each beside
    Chromium.

    **Time:** about 40 minutes. **Prerequisites:** 02 (`negotiationneeded`), 03 (the
    timing trap), 05 (offer, counter-offer, answer), 07 (glare and perfect negotiation).
    """),
    code("""
    %matplotlib inline
    import asyncio

    import rtclab
    from rtclab import data, flows, plots
    """),
    md("""
    ## The article's flow in code

    Read the callee first. When the offer arrives it creates the peer connection, applies
    the offer, adds any candidates that came early, and answers straight away. Its answer
    has a video section, because the caller offered video, but no camera behind it: the
    browser marks it `recvonly`. Only then does the phone ring. On the click, `addTrack`
    puts the camera on the call, and the page's own `negotiationneeded` handler (set up
    when the connection was made) sends a `video-offer` to the caller. The caller's half
    is the textbook caller that also knows how to answer an offer.
    """),
    code("""
    print(rtclab.flow_source("article", helpers=False))
    """),
    md("""
    ## One call, behind two NATs

    The call connects while the phone rings, and the click starts the second round:
    """),
    code("""
    art = rtclab.run("article", topology="nat")
    print(art.outcome, "-", art.reason)
    print("connected at", art.metrics["t_connected_ms"], "ms; Answer clicked at", art.metrics["t_answer_click_ms"], "ms")
    """),
    md("""
    Everything after the click: the callee's `addTrack` (rtclab notes that it reused the
    transceiver the offer created), the `negotiationneeded` event, the callee's offer, the
    caller's answer, and the first frame of the callee's camera at the caller.
    """),
    code("""
    click = art.metrics["t_answer_click_ms"]
    art.events.query("t_ms >= @click and kind in ['user', 'call', 'signal', 'media'] and name != 'close'")[["t_ms", "actor", "kind", "name", "value", "detail"]]
    """),
    md("""
    The article expects new ICE candidates at this point. There are none: both sections of
    the call share one transport (BUNDLE, the browsers' default), so the new offer reuses
    the ICE session that is already connected. Every candidate of the call was gathered
    before the click:
    """),
    code("""
    gathered = art.events.query("kind == 'ice' and name == 'candidate' and value == 'gathered'")
    print(len(gathered), "candidates gathered, the last one at", gathered["t_ms"].max(), "ms;",
          (gathered["t_ms"] > click).sum(), "after the click")
    """),
    md("""
    ## The same steps in Chromium

    rtclab's peers are aiortc with the browser's behaviour emulated, so the claim "no new
    candidates, one round trip" must be checked against a browser. The conformance suite
    (`python -m rtclab.conformance`) ran the same steps in Chromium 156 (two peer
    connections in one page, loopback only) and stored the frame. Its `observe` rows are
    what the page read at each step: after `addTrack` the transceiver's `direction` is
    already `sendrecv` while its `currentDirection` is still `recvonly` (not negotiated
    yet); `negotiationneeded` follows; after the new offer and answer no new candidate was
    gathered.
    """),
    code("""
    chromium = data.chromium_trace("RTCPeerConnection-onnegotiationneeded/callee-addTrack-after-answer")
    chromium.query("actor == 'callee' and (name == 'addTrack' or name.str.startswith('observe') or name == 'negotiationneeded' or (kind == 'ice' and value == 'gathered'))", engine="python")[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    Side by side, the state machines of both peers: rtclab's `article` call on the left,
    Chromium on the right. Both connect once, and the second negotiation leaves ICE and
    the connection alone (only `signalingState` moves).
    """),
    code("""
    fig = plots.beside(rtclab.run("article"), chromium, plot="states",
                       titles=("rtclab: the article flow", "Chromium 156: callee addTrack after the answer"))
    """),
    md("""
    ## Four ways to answer, measured

    One call per flow and topology. Two metrics count what happens *after* the click:
    `messages_after_answer` (signaling messages sent) and `candidates_after_answer`
    (candidates gathered).
    """),
    code("""
    answer_flows = ["article", "counteroffer", "queue-on-click", "answer-on-click"]
    ways = rtclab.sweep(answer_flows, trials=1, grid={"topology": ["lan", "nat"]}, progress=False, workers=1)
    print(ways[["flow", "topology", "outcome", "messages_after_answer", "candidates_after_answer", "answer_to_media_ms"]].to_string(index=False))
    """),
    md("""
    Reading the table:

    * `article` sends two messages after the click (the callee's offer and the caller's
      answer) and gathers nothing new;
    * `counteroffer` sends one (`call-accepted`) and gathers nothing new;
    * `queue-on-click` and `answer-on-click` start everything at the click: the answer,
      every candidate of the callee, ICE and DTLS. `answer-on-click` also fails behind
      NATs, because it dropped the caller's early candidates (notebook 03);
      `queue-on-click` kept them and connects.

    ## Answering speed: signaling latency against the media path

    The renegotiation costs one signaling *round trip* after the click, `call-accepted`
    one *one-way* trip, and the two on-click flows one one-way trip (their answer) plus
    the whole ICE and DTLS set-up over the media path. Which is fastest therefore depends
    on both paths. A sweep over the signaling latency, on the LAN (a fast media path) and
    behind NATs (where the set-up takes longer):
    """),
    code("""
    speed = rtclab.sweep(answer_flows, trials=1, grid={"topology": ["lan", "nat"], "signaling_latency_ms": [10, 200]},
                         progress=False, workers=1)
    speed.pivot_table(index=["topology", "flow"], columns="signaling_latency_ms", values="answer_to_media_ms").round()
    """),
    md("""
    On the LAN with a fast signaling server everything is quick. With a slow signaling
    server the renegotiation's round trip makes `article` the *slowest* way to answer on
    the LAN: the on-click flows need only one trip there, and their ICE set-up is short.
    Behind NATs the set-up dominates: the early-answer flows stay fast because ICE and
    DTLS finished while the phone rang, `queue-on-click` waits for all of it after the
    click, and `answer-on-click` never connects. The article's promise, answering "in the
    blink of an eye", holds when the media path is the slow part; a slow signaling server
    eats into it. What the early flows cost besides time is notebook 13's subject: both
    connect *before* the user accepts, so the callee's addresses (and in `article` even
    the caller's video) reach the other side early.
    """),
    md("""
    ## Glare in the middle of a call

    The click starts a negotiation *during* a call, and the other side may do the same at
    any moment: the caller shares its screen (a second video), turns its camera off, adds
    a microphone. If both changes happen within one signaling trip of each other, both
    pages make an offer, each is in `have-local-offer` when the other's offer arrives:
    glare, as in notebook 07, but now with a connection that is up and carrying media.

    To make the collision happen on purpose, the caller below shares a second video at
    the exact moment the callee's user clicks *Answer*. In this seeded run (LAN, 20 ms
    signaling latency, one second of think time) that moment is always the same:
    """),
    code("""
    share_at_ms = rtclab.run("article").metrics["t_answer_click_ms"]
    share_at_ms
    """),
    md("""
    The caller is the article's caller (its code was printed above) plus the share. The
    callee is the article's callee, unchanged: `flows.article_callee`.
    """),
    code("""
    async def sharing_caller(app):
        pc = app.RTCPeerConnection()
        queue = flows.CandidateQueue()
        flows.send_candidates(app, pc, end_of_candidates=False)
        await flows.send_offer_on_negotiationneeded(app, pc)

        async def on_message(msg):
            if msg["type"] == "video-answer":
                await pc.setRemoteDescription(msg["sdp"])
                await queue.flush(pc)
            elif msg["type"] == "video-offer":  # naive: answer whatever offer comes in
                await pc.setRemoteDescription(msg["sdp"])
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate":
                await queue.add(msg["candidate"])

        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)
        await asyncio.sleep(share_at_ms / 1000)  # the user clicks "share screen" ...
        pc.addTrack(app.getUserMedia()[0])        # ... a second video: negotiationneeded, a new offer
    """),
    md("""
    ### The naive code

    `hold_s=1` keeps the call up for a second after it connected, so that what follows
    the click is recorded:
    """),
    code("""
    naive = rtclab.run(caller=sharing_caller, callee=flows.article_callee, hold_s=1)
    print(naive.outcome, "-", naive.reason)
    """),
    md("""
    The signaling states from the click on. Both sides go to `have-local-offer` at the
    same moment; 20 ms later each receives the other's offer. The article's code applies
    it, and a browser then rolls the page's own offer back first (the implicit rollback,
    notebook 07): `stable`, then `have-remote-offer`, then the answer and `stable` again.
    The caller then goes back to `have-local-offer` and stays there:
    """),
    code("""
    after = naive.events.query("t_ms >= @share_at_ms")
    after.query("kind == 'state' and name == 'signalingState' and value != 'closed'")[["t_ms", "actor", "value", "prev"]]
    """),
    md("""
    Why it went back: its second video was only in the offer it rolled back, so once it is
    `stable` again that video still needs negotiating, `negotiationneeded` fires and the
    caller offers again. Then three messages arrive, and each one fails:
    """),
    code("""
    for row in after.query("kind == 'error' and name == 'setRemoteDescription'").itertuples():
        print(f"{row.t_ms:7.1f} ms  {row.actor:6}  {row.value}: {row.detail.split('sdp: ')[-1]}")
    """),
    md("""
    * the **caller** receives the callee's answer to its first offer while it waits for an
      answer to its *second*: the answer does not fit that offer (`InvalidAccessError`);
    * the **callee** receives the caller's answer to *its* offer, which it rolled back:
      it is `stable`, so `InvalidStateError`, the classic glare error;
    * the **callee** then receives the caller's second offer. It has already negotiated
      the caller's second video, from the first offer, under the name (mid) `1`; the
      caller, having rolled that offer back, now calls it `2`. An offer may not rename or
      reorder the sections of a call, so the callee refuses it (`InvalidAccessError`).

    Did the call survive? Yes: a rollback during a call undoes only the negotiation, and
    `connectionState` does not move from the click until the hang-up. Did each change get
    negotiated? A new video that gets media shows an `unmute` row (its first packet):
    """),
    code("""
    print("connectionState changes after the click:", after.query("name == 'connectionState' and value != 'closed'")["value"].tolist())
    print("first packets on a new video, at:", after.query("kind == 'media' and name == 'unmute'")["actor"].tolist())
    """),
    md("""
    Only the caller receives a new video: the callee's camera got through, because the
    caller answered the callee's offer and the callee's own answer also says `sendrecv`
    for it. The caller's second video never reaches the callee. Worse, the two pages now
    disagree about what the call contains, the caller is stuck in `have-local-offer`,
    and every further offer from the caller will be refused the same way. Nothing in the
    outcome line says so: `connected - media flows both ways` only means that the first
    video flows each way.

    ### With perfect negotiation's guard

    MDN's perfect negotiation (notebook 07) makes one side polite. Here the guard is
    written once and used by both pages: it makes the offer on `negotiationneeded`
    (remembering that it is `making_offer`), and on an incoming offer it checks for a
    collision. The impolite page ignores a colliding offer; the polite one applies it,
    which rolls its own offer back, and answers.
    """),
    code("""
    def perfect_negotiation(app, pc, polite):
        state = {"making_offer": False, "ignore_offer": False}

        async def on_negotiationneeded():
            try:
                state["making_offer"] = True
                await pc.setLocalDescription()
                app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})
            finally:
                state["making_offer"] = False

        async def on_description(description):
            collision = description["type"] == "offer" and (state["making_offer"] or pc.signalingState != "stable")
            state["ignore_offer"] = not polite and collision
            if state["ignore_offer"]:
                return  # impolite: our offer wins
            await pc.setRemoteDescription(description)  # polite: rolls our own offer back first
            if description["type"] == "offer":
                await pc.setLocalDescription()
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})

        pc.on("negotiationneeded", on_negotiationneeded)
        return on_description
    """),
    md("""
    The two pages keep the article's shape (the callee answers at once, queues early
    candidates, and adds its camera on the click); only the offer/answer handling goes
    through the guard. The callee is the polite one.
    """),
    code("""
    async def impolite_caller(app):
        pc = app.RTCPeerConnection()
        queue = flows.CandidateQueue()
        flows.send_candidates(app, pc, end_of_candidates=False)
        on_description = perfect_negotiation(app, pc, polite=False)

        async def on_message(msg):
            if msg["type"] in ("video-offer", "video-answer"):
                await on_description(msg["sdp"])
                await queue.flush(pc)
            elif msg["type"] == "new-ice-candidate":
                await queue.add(msg["candidate"])

        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)
        await asyncio.sleep(share_at_ms / 1000)
        pc.addTrack(app.getUserMedia()[0])


    async def polite_callee(app):
        pc = on_description = None
        queue = flows.CandidateQueue()

        async def on_message(msg):
            nonlocal pc, on_description
            if msg["type"] == "video-offer" and pc is None:
                pc = app.RTCPeerConnection()
                flows.send_candidates(app, pc, end_of_candidates=False)
                on_description = perfect_negotiation(app, pc, polite=True)
                await on_description(msg["sdp"])  # answers at once, without media
                await queue.flush(pc)
                await app.user.answer()
                for track in app.getUserMedia():
                    pc.addTrack(track)
            elif msg["type"] in ("video-offer", "video-answer"):
                await on_description(msg["sdp"])
            elif msg["type"] == "new-ice-candidate":
                await queue.add(msg["candidate"])

        app.on_message(on_message)
    """),
    code("""
    guarded = rtclab.run(caller=impolite_caller, callee=polite_callee, hold_s=1)
    print(guarded.outcome, "-", guarded.reason)
    g_after = guarded.events.query("t_ms >= @share_at_ms")
    g_after.query("(kind == 'state' and name == 'signalingState' and value != 'closed') or name == 'rollback'")[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    The same collision, resolved: the caller ignores the callee's offer and stays in
    `have-local-offer`; the callee rolls its offer back, answers the caller's, and the
    caller's `stable` at 1060 ms ends it. One round instead of the naive code's tangle,
    and no error row at all. Both changes are in that one round: the caller's offer adds
    its second video, and the callee's answer, made after its `addTrack`, sends its camera
    on the transceiver that `addTrack` reused. So the callee needs no offer of its own
    afterwards, and both new videos get media:
    """),
    code("""
    print("errors:", len(guarded.events.query("kind == 'error'")))
    print("connectionState changes after the click:", g_after.query("name == 'connectionState' and value != 'closed'")["value"].tolist())
    print("first packets on a new video, at:", g_after.query("kind == 'media' and name == 'unmute'")["actor"].tolist())
    """),
    md("""
    The answer cannot carry every change. An answer can only accept or refuse the
    sections of the offer it answers; if the polite side's change needs a section of its
    own (the callee shares a video too, or adds a microphone the caller's offer does not
    have), that part waits. Once the polite side is `stable` again, `negotiationneeded`
    fires once more and it offers it itself: the guard's two handlers already do that,
    with no extra code.

    ### The same collisions in Chromium

    The conformance suite has three scenarios for this in Chromium 156 (two peer
    connections in one page, the messages delivered by the script in the order a
    collision produces): the naive code, the guard with the article's *Answer* click, and
    the guard where the polite side's change needs a round of its own. rtclab's `Peer`
    gives the same essentials in all three but for one detail, shown below (the README's
    conformance table lists it as a documented difference).

    **The naive code.** The same three errors, in the same order and with the same
    names:
    """),
    code("""
    cr_naive = data.chromium_trace("RTCPeerConnection-perfect-negotiation/glare-during-call-naive-both-answer")
    for row in cr_naive.query("kind == 'call' and value == 'error'").itertuples():
        print(f"{row.actor:6}  {row.detail.split(':')[0]}: {row.detail.split('sdp: ')[-1]}")
    """),
    md("""
    What the page read at the end (its `observe` rows): the caller's second transceiver
    has no `currentDirection` (never negotiated on the caller's side) and mid `2`, while
    the callee has it as mid `1`, `recvonly`; both connections are still `connected`; the
    video statistics count packets and decoded frames on mid 0 only, both ways, so the
    callee's camera reaches the caller and the caller's second video goes nowhere:
    """),
    code("""
    for row in cr_naive.query("name in ['observe:currentDirections', 'observe:mids', 'observe:connectionState at the end', 'observe:video rtp (not compared)']").itertuples():
        print(f"{row.actor:6}  {row.name[len('observe:'):]:27}  {row.value}")
    """),
    md("""
    (The page's own first-frame probe saw no frame on that video element, although the
    statistics count decoded frames; the scenario therefore does not compare media there.)

    Side by side, the state machines: in both, the caller's signaling ends in
    `have-local-offer` (the amber band that never closes) while the connection stays
    `connected`:
    """),
    code("""
    fig = plots.beside(naive, cr_naive, plot="states",
                       titles=("rtclab: naive code, share at the click", "Chromium 156: naive code, crossing offers"))
    """),
    md("""

    **With the guard.** Chromium's signaling states next to rtclab's guarded run: the
    impolite caller goes `have-local-offer` → `stable`, the polite callee
    `have-local-offer` → `stable` → `have-remote-offer` → `stable`, and `connectionState`
    stays `connected`. The one difference: Chromium's callee reports `iceConnectionState`
    `new` for a moment (10 to 60 ms in the runs recorded), from applying the caller's
    offer (which adds a video section) until its answer, then `connected` again (the thin grey sliver in its ICE connection
    band; the naive trace has the same). rtclab's stays `connected`: this blip is not
    emulated. A page that reacts to every `iceConnectionState` change would see it;
    `connectionState` does not show it.
    """),
    code("""
    cr_guard = data.chromium_trace("RTCPeerConnection-perfect-negotiation/glare-during-call-answer-carries-polite-change")
    fig = plots.beside(guarded, cr_guard, plot="states",
                       titles=("rtclab: perfect negotiation, share at the click", "Chromium 156: the same collision"))
    """),
    code("""
    t_glare = cr_guard.query("name == 'observe:glare starts'")["t_ms"].iloc[0]
    print("Chromium, ICE and connection states after the collision:",
          cr_guard.query("t_ms > @t_glare and name in ['iceConnectionState', 'connectionState'] and value != 'closed'")[["actor", "name", "value"]].values.tolist())
    cr_guard.query("name in ['observe:offers made', 'observe:new tracks with media', 'observe:connectionState at the end']")[["actor", "name", "value"]]
    """),
    md("""
    One offer from the callee (the rolled-back one), a new video with media at each side,
    both connected. And when the polite side's change needs its own round, Chromium fires
    `negotiationneeded` on the polite side a second time and that offer is answered; its
    new section gets mid `3`, because mid `2` went with its rolled-back offer:
    """),
    code("""
    cr_own = data.chromium_trace("RTCPeerConnection-perfect-negotiation/glare-during-call-polite-renegotiates")
    print("callee negotiationneeded events:", len(cr_own.query("actor == 'callee' and name == 'negotiationneeded'")))
    cr_own.query("name in ['observe:mids', 'observe:new tracks with media', 'observe:connectionState at the end']")[["actor", "name", "value"]]
    """),
    md("""
    ## Summary

    * The article's *Answer* is a renegotiation started by the callee: `addTrack` reuses
      the `recvonly` transceiver, `negotiationneeded` fires on the callee, it offers, the
      caller answers. One extra round trip, no new candidates (BUNDLE), in rtclab and in
      Chromium 156.
    * Pre-negotiating the callee's camera and switching it on with `replaceTrack` avoids
      the second round; the app then needs its own accept message.
    * Both hide the ICE and DTLS set-up in the ringing time, which matters most where that
      set-up is slow (NATs, long links); the renegotiation's extra round trip matters where
      the signaling server is slow. Both are safe against reordering because they queue
      early candidates.
    * The click is a negotiation in the middle of a call, so it can collide with one from
      the other side. With the article's naive code the call survives (a rollback during
      a call leaves ICE, DTLS and media alone) but the late answers and the next offer
      fail, the caller's change is never negotiated and the two sides disagree on the
      call's sections, in rtclab and in Chromium 156. Perfect negotiation's guard (one
      side ignores, the polite side rolls back and answers) settles it in one round; a
      change the answer cannot carry follows in a second round by itself.

    **Try this**

    1. Run `article` with reordering signaling (`signaling_latency_ms=50, jitter_ms=40,
       reorder=0.5`) for a few seeds. Does the callee's offer ever reach the caller before
       the callee's answer? What does the caller's queue do with the candidates?
    2. Change `answer_delay_ms` to 10 for both early-answer flows. The user now clicks
       before ICE has connected: what happens to `answer_to_media_ms`?
    3. Compare `article` on `topology="nat", nat="symmetric", turn=True`: does the second
       round gather new relay candidates?
    4. In Chromium's `glare-during-call-polite-renegotiates` trace, the polite callee's
       second video ends up as mid `3`. Which offer used mid `2`, and what happened to it?
       Does rtclab's `Peer` number it the same way? (`rtclab.conformance.runner.run_sim`
       runs a scenario on `Peer`; in a notebook, call it from a worker thread.)
    """),
]
