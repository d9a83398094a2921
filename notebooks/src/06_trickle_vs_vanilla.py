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
    from rtclab import plots
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
    description go: a browser resolves `setLocalDescription` at once and gathers
    afterwards, while aiortc gathers inside `setLocalDescription`. Check the README's
    "rtclab vs a browser" table (row *when `setLocalDescription` resolves*) for how
    the version of rtclab you are running emulates this; the numbers above are what
    it measures. A browser, which also trickles each server-reflexive or relay
    candidate as soon as its server answers, may give trickle ICE a larger lead,
    especially when gathering is slow (a distant STUN server, a TURN allocation).

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
