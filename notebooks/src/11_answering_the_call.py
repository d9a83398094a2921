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

    One call per flow and topology. The extra columns count what happens *after* the
    click: signaling messages sent and candidates gathered.
    """),
    code("""
    def after_click(run):
        ev, click = run.events, run.metrics["t_answer_click_ms"]
        sent = ev.query("kind == 'signal' and value == 'sent' and t_ms >= @click")
        gathered = ev.query("kind == 'ice' and value == 'gathered' and t_ms >= @click")
        return {"flow": run.flow, "topology": run.params["topology"], "outcome": run.outcome,
                "messages_after_click": len(sent), "candidates_after_click": len(gathered),
                "answer_to_media_ms": run.metrics["answer_to_media_ms"]}

    flows = ["article", "counteroffer", "queue-on-click", "answer-on-click"]
    rows = [after_click(rtclab.run(f, topology=t)) for f in flows for t in ["lan", "nat"]]
    import pandas as pd
    print(pd.DataFrame(rows).to_string(index=False))
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

    ## Answering speed against signaling latency

    The renegotiation costs one signaling round trip, so its wait grows with the latency
    of the signaling server; `call-accepted` costs one way. A small sweep on the LAN:
    """),
    code("""
    speed = rtclab.sweep(flows, trials=1, grid={"signaling_latency_ms": [10, 50, 200]}, progress=False, workers=1)
    speed.pivot_table(index="flow", columns="signaling_latency_ms", values="answer_to_media_ms", aggfunc="median").round()
    """),
    md("""
    Both early-answer flows stay far below the two on-click flows, and the difference
    between them is the latency they wait for: about one round trip for `article`, about
    one way for `counteroffer`. What each one costs besides time is the subject of
    notebook 13: both connect *before* the user accepts, so the callee's addresses (and
    in `article` even the caller's video) reach the other side early.

    ## Summary

    * The article's *Answer* is a renegotiation started by the callee: `addTrack` reuses
      the `recvonly` transceiver, `negotiationneeded` fires on the callee, it offers, the
      caller answers. One extra round trip, no new candidates (BUNDLE), in rtclab and in
      Chromium 156.
    * Pre-negotiating the callee's camera and switching it on with `replaceTrack` avoids
      the second round; the app then needs its own accept message.
    * Both are much faster than creating the connection on the click, and both are safe
      against reordering because they queue early candidates.

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
