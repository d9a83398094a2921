from build import code, md

CELLS = [
    md("""
    # 6 · Trickle ICE vs vanilla ICE

    **Overview.** There are two ways to get ICE candidates to the other side.
    *Trickle ICE*, which every call so far has used, sends the offer or answer at once
    and then each candidate in its own `new-ice-candidate` message as it is found.
    *Vanilla ICE*, the older way, waits until gathering is complete and sends one
    description that already contains every candidate. In this notebook you will

    * read the `vanilla` flow's app code,
    * count the signaling messages of each style and see where the candidates travel,
    * compare connection times of the two on a LAN and behind NATs, with short and long
      network links.

    **Time.** About 15 minutes.

    **Prerequisites.** 01 (anatomy of a call: gathering, candidates, the four state
    machines) and 04 (LAN and NAT topologies, STUN).
    """),
    code("""
    %matplotlib inline
    import asyncio

    import rtclab
    from rtclab import data, plots
    """),
    md("""
    ## Vanilla ICE in code

    The caller creates its offer on `negotiationneeded` as before, but before sending
    it waits for `iceGatheringState` to become `complete`; the callee does the same
    with its answer. There is no `icecandidate` handler at all: `localDescription`,
    read after gathering, carries the candidates as `a=candidate` lines.
    """),
    code("""
    print(rtclab.flow_source("vanilla"))
    """),
    md("""
    ## Where the candidates travel

    One call of each style behind NATs (with the simulated STUN server, so each side
    also has a server-reflexive candidate). First the messages each call sent:
    """),
    code("""
    trickle = rtclab.run("basic", topology="nat")
    vanilla = rtclab.run("vanilla", topology="nat")
    trickle.events.query("kind == 'signal' and value == 'sent'")["name"].value_counts()
    """),
    code("""
    vanilla.events.query("kind == 'signal' and value == 'sent'")["name"].value_counts()
    """),
    md("""
    Vanilla ICE sends only the offer and the answer. Its candidates are inside them:
    the `detail` of each `setRemoteDescription` row summarises the description that
    was applied, including how many `a=candidate` lines it carried.
    """),
    code("""
    trickle.events.query("name == 'setRemoteDescription'")[["t_ms", "actor", "detail"]]
    """),
    code("""
    vanilla.events.query("name == 'setRemoteDescription'")[["t_ms", "actor", "detail"]]
    """),
    md("""
    The candidate plot shows each candidate's life: gathered, sent, delivered, and its
    fate at the receiver. With trickle ICE every candidate has the full line.
    """),
    code("""
    ax = plots.candidates(trickle)
    """),
    md("""
    With vanilla ICE the candidates are only *gathered*: no candidate message is ever
    sent, so the plot has nothing to draw after gathering (their "fate" is decided
    inside `setRemoteDescription`, when the remote description with its candidate
    lines is applied; the dotted lines mark when that happened). Notice also when
    each side could send its description: only after its last candidate.
    """),
    code("""
    ax = plots.candidates(vanilla)
    """),
    md("""
    ## Vanilla ICE in Chromium

    Two statements above are about browsers: `setLocalDescription` returns before any
    candidate is in the description, and the description read once gathering is
    `complete` carries them all. The conformance suite checked both in Chromium 156 (two
    peer connections in one page, loopback only, no STUN or TURN server). The caller adds
    a camera, calls `setLocalDescription`, waits for `iceGatheringState` to be `complete`
    and hands its `localDescription` to the callee, which does the same with its answer;
    no `icecandidate` handler passes anything on. The descriptions, the gathering and
    connection states, and what the page read (`observe` rows):
    """),
    code("""
    chromium = data.chromium_trace("RTCPeerConnection-iceGatheringState/vanilla-description-after-complete")
    shown = "name in ['setLocalDescription', 'setRemoteDescription', 'iceGatheringState', 'connectionState'] or name.str.startswith('observe')"
    chromium.query(shown, engine="python")[["t_ms", "actor", "name", "value", "detail"]]
    """),
    md("""
    The offer had no candidate when `setLocalDescription` returned (`candidates=0`) and
    had them once gathering was over: the callee applied an offer with `candidates=2`
    (a UDP and a TCP host candidate on `127.0.0.1`, all there is to find on loopback).
    The call connected without a single `addIceCandidate`; both sides were already
    `connecting` before the caller had applied the answer, because the callee starts its
    checks once it holds the offer's candidates and its own answer, and the caller
    replies to them. rtclab's `Peer` behaves the
    same way on both points (aiortc on its own would gather inside
    `setLocalDescription`). One difference, listed in the README's "rtclab vs a browser"
    table: Chromium's completed description has no `a=end-of-candidates` line, while
    rtclab's (aiortc's) has one. Vanilla ICE never sends a later candidate, so here it
    changes nothing.

    The candidate plots side by side, rtclab's vanilla call behind NATs on the left and
    Chromium on loopback on the right: every candidate is only gathered, and each side's
    description is applied by the other after its last candidate.
    """),
    code("""
    fig = plots.beside(vanilla, chromium, plot="candidates",
                       titles=("rtclab: vanilla behind NATs", "Chromium 156: vanilla ICE on loopback"))
    """),
    md("""
    ## Which one connects sooner?

    Both styles connect on both topologies; the question is how soon. The table below
    runs one call per flow, topology and one-way link latency (`link_latency_ms`, the
    delay of every packet on the simulated network, which also slows the STUN round
    trips of gathering).
    """),
    code("""
    setup = rtclab.sweep(["basic", "vanilla"], trials=1, progress=False,
                         grid={"topology": ["lan", "nat"], "link_latency_ms": [5, 50]})
    print(setup[["flow", "topology", "link_latency_ms", "outcome", "gathering_ms",
                 "t_connected_ms", "t_first_frame_ms", "messages_sent"]].round().to_string(index=False))
    """),
    md("""
    How to read it. With vanilla ICE a side's description leaves only after
    `gathering_ms`, so its set-up time contains gathering once per side, one after the
    other. With trickle ICE the description can leave before gathering ends and
    connectivity checks can start on the first candidates, so gathering overlaps
    with signaling. How much that overlap saves depends on *when* the peer lets the
    description go: Chromium resolves `setLocalDescription` at once and gathers
    afterwards (the trace above), and so does rtclab's `Peer`. It also depends on how
    long gathering lasts: with STUN and TURN servers, until the slowest one has answered.
    Trickle ICE sends each candidate as it is found; vanilla ICE waits for the last.
    The stored Chromium runs have no servers at all (loopback only), so the size of that
    lead in a browser is not measured here; the numbers above come from rtclab's
    simulated STUN server and links.

    Trickle ICE pays for its speed with more messages and more code (handlers for
    candidates, a queue for early ones, see notebooks 03 and 05). Vanilla ICE is
    simpler and immune to candidate timing bugs, because there are no candidate
    messages to lose or reorder.

    """),
    md("""
    ## Fix the code

    A vanilla (non-trickle) caller sends one offer that must already carry its
    candidates. The caller below sends its offer as soon as `setLocalDescription` returns,
    and it does not trickle either. In a browser, and in rtclab, gathering has only just
    started at that moment.

    **Edit the cell** so the offer leaves with every candidate. The check plays your
    caller against the `vanilla` callee on a LAN and behind NATs and passes when every call
    connects with no candidate lost. As given, it fails:
    """),
    code("""
    async def my_caller(app):
        pc = app.RTCPeerConnection()

        async def on_negotiationneeded():
            await pc.setLocalDescription(await pc.createOffer())
            app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})

        async def on_message(msg):
            if msg["type"] == "video-answer":
                await pc.setRemoteDescription(msg["sdp"])

        pc.on("negotiationneeded", on_negotiationneeded)
        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)
    """),
    code("""
    rtclab.exercises.check_06(my_caller)
    """),
    md("""
    Hint: `pc.on("icegatheringstatechange", ...)` and `pc.iceGatheringState`; an
    `asyncio.Event` lets the handler wait. The LAN calls connect because the callee's
    answer carries *its* candidates. The solution is in notebook 10.
    """),
    md("""
    ## Summary

    * Vanilla ICE: wait for gathering, send one description with every candidate;
      two signaling messages in all.
    * Trickle ICE: send the description at once, then each candidate as it comes;
      more messages, and set-up can overlap gathering with signaling.
    * What the overlap is worth depends on how long gathering takes and on when the
      implementation releases the description: measure it, as above.
    * Chromium 156 (stored trace): `setLocalDescription` returns with no candidate in the
      description, the description read after gathering carries them, and a call
      connects on the two descriptions alone; rtclab does the same.

    The simulated network is a model (fixed latency per link, a STUN server inside the
    simulation); use it to compare the two styles, not to predict milliseconds on the
    internet.

    **Try this**

    1. Make gathering slower: add `link_latency_ms=200` to the sweep. How do
       `gathering_ms` and `t_connected_ms` of the two flows move?
    2. Turn the STUN server off (`stun=False`) on the LAN. What does gathering consist
       of then, and does vanilla still wait?
    3. Behind symmetric NATs with `turn=True`, a relay candidate must be allocated
       before vanilla can send anything. Compare the two flows there.
    4. Add `loss=0.2` (signaling messages dropped). Which style suffers, and why?
    """),
]
