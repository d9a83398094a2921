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
    callee's connection only on the click (`queue-on-click`, `answer-on-click`).

    **Time:** about 25 minutes. **Prerequisites:** 02 (`negotiationneeded`), 03 (the
    timing trap), 05 (offer, counter-offer, answer).
    """),
    code("""
    %matplotlib inline
    import rtclab
    from rtclab import data, plots
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
    flows = ["article", "counteroffer", "queue-on-click", "answer-on-click"]
    ways = rtclab.sweep(flows, trials=1, grid={"topology": ["lan", "nat"]}, progress=False, workers=1)
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
    speed = rtclab.sweep(flows, trials=1, grid={"topology": ["lan", "nat"], "signaling_latency_ms": [10, 200]},
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

    **Try this**

    1. Run `article` with reordering signaling (`signaling_latency_ms=50, jitter_ms=40,
       reorder=0.5`) for a few seeds. Does the callee's offer ever reach the caller before
       the callee's answer? What does the caller's queue do with the candidates?
    2. Change `answer_delay_ms` to 10 for both early-answer flows. The user now clicks
       before ICE has connected: what happens to `answer_to_media_ms`?
    3. Compare `article` on `topology="nat", nat="symmetric", turn=True`: does the second
       round gather new relay candidates?
    """),
]
