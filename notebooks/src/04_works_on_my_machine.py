from build import code, md

CELLS = [
    md("""
    # 4 · Works on my machine

    **Overview.** In notebook 03 the `answer-on-click` callee lost every candidate the
    caller sent, and the call connected anyway. This notebook explains why (a
    *peer-reflexive* candidate) and then moves the same two machines behind NATs, where
    that rescue no longer works. You will then see what STUN buys behind ordinary NATs,
    why a symmetric NAT needs a TURN relay, and a small table of NAT types × ICE servers
    for the textbook call.

    **Time.** About 20 minutes.

    **Prerequisites.** Notebooks 01 and 03. Background on candidate types: MDN's
    [`RTCIceCandidate.type`](https://developer.mozilla.org/en-US/docs/Web/API/RTCIceCandidate/type)
    and [Introduction to WebRTC protocols](https://developer.mozilla.org/en-US/docs/Web/API/WebRTC_API/Protocols)
    (NAT, STUN, TURN).

    **About the network.** Everything here runs on rtclab's simulated network: real aiortc
    and aioice code, but the NATs are a *model* of the classic behaviours described in
    [RFC 4787](https://www.rfc-editor.org/rfc/rfc4787) (how a NAT maps an inside address
    to an outside port, and which outside packets it lets back in). Real NATs and
    firewalls vary more than four types, time mappings out, sometimes hairpin, sometimes
    block UDP altogether. Treat the results as an explanation of the mechanism, not as a
    prediction for your users' networks. Where the notebook says what a browser does, it
    shows a stored Chromium 156 run beside rtclab's; those runs are on loopback, without
    any NAT, and the notebook says what they can and cannot show.
    """),
    code("""
    %matplotlib inline
    import rtclab
    from rtclab import data, plots
    """),
    md("""
    ## On a flat network: rescued by a peer-reflexive candidate

    First the `answer-on-click` call again, on the default `lan` topology: both machines on
    one subnet, each able to send to the other's address directly.
    """),
    code("""
    lan = rtclab.run("answer-on-click", topology="lan")
    lan.metrics[["outcome", "candidates_lost", "candidates_added"]]
    """),
    md("""
    Both of the caller's candidates were lost, yet the call connected. Look at the pair each
    side finally selected, written *local type / remote type* as that side sees it:
    """),
    code("""
    lan.events.query("name == 'selected-pair'")[["t_ms", "actor", "value"]]
    """),
    md("""
    The caller knows the callee's candidates (the callee sent them after answering) and
    sends connectivity checks to them. On a flat network those checks arrive. The callee
    then sees a check coming from an address it was never told about, and ICE's rule
    ([RFC 8445 §7.3.1.3](https://www.rfc-editor.org/rfc/rfc8445#section-7.3.1.3)) is to
    accept it and learn that address as a **peer-reflexive** (`prflx`) candidate. The
    callee's ICE agent logs the discovery:
    """),
    code("""
    lan.events.query("kind == 'ice' and name == 'log' and value.str.contains('peer reflexive')")[["t_ms", "actor", "value"]]
    """),
    md("""
    So, on a flat network, one side's candidates are enough: the other side learns the
    missing address from the incoming checks. The metrics carry the selected pair too
    (`selected_pair` is the first one reported):
    """),
    code("""
    lan.metrics.filter(like="selected_pair")
    """),
    md("""
    ### The same rescue in Chromium

    Learning a peer-reflexive candidate is ICE's rule, not an aiortc habit, so a browser
    should be rescued the same way. The conformance suite checked it in Chromium 156: two
    peer connections in one page, a data channel, only the callee's candidates handed to
    the caller (the caller's are thrown away), and once both sides were connected the
    page read each side's selected pair from `getStats()` (local type / remote type):
    """),
    code("""
    prflx = data.chromium_trace("RTCPeerConnection-iceConnectionState/one-way-candidates-prflx")
    prflx.query("name in ['addIceCandidate', 'connectionState', 'observe:selected pair']")[["t_ms", "actor", "name", "value", "detail"]]
    """),
    md("""
    Only the caller added anything (the callee's candidate, then end-of-candidates). The
    callee added nothing, connected all the same, and its selected pair has a `prflx`
    remote candidate: the caller's address, learnt from the checks, as in rtclab's call.
    The candidate plots side by side, rtclab's LAN call on the left (the caller's
    candidates marked lost) and Chromium on the right (the caller's candidates gathered
    and never delivered):
    """),
    code("""
    fig = plots.beside(lan, prflx, plot="candidates",
                       titles=("rtclab: answer-on-click on a LAN", "Chromium 156: only the callee's candidates delivered"))
    """),
    md("""
    What such a browser run can and cannot show. It runs on one machine's loopback
    interface, inside a network namespace that has no other, with no STUN or TURN server.
    So Chromium's candidates are host candidates on `127.0.0.1` only (UDP, sometimes also
    a TCP `active` one with port 9, which only dials out): no srflx, no relay, and no NAT
    anywhere. Note too that the addresses are real ones, not mDNS `.local` names. Chrome
    normally hides a host address behind a random `.local` name unless the page has
    camera or microphone permission; the recording browser accepts camera requests
    automatically (the switch `--use-fake-ui-for-media-stream`, and
    `--allow-loopback-in-peer-connection` to gather on loopback at all; see
    `rtclab.browser.CHROMIUM_ARGS`), which is the likely reason the raw address shows.
    A page on the web that has not asked for the camera would trickle `.local` names.
    """),
    md("""
    ## Behind NATs: the same app fails

    Now the same app, with each machine behind its own NAT (`topology="nat"`; both NATs are
    *port-restricted*, rtclab's default, a common home-router behaviour). We also record
    every packet (`record_packets=True`), which adds `kind == "net"` rows to the frame.
    """),
    code("""
    nat = rtclab.run("answer-on-click", topology="nat", record_packets=True)
    nat.outcome, nat.reason
    """),
    md("""
    The call fails, and it takes ICE a long time to give up. The time (in virtual
    seconds) at which the caller's connection state turned `failed`:
    """),
    code("""
    failed = nat.events.query("kind == 'state' and name == 'connectionState' and value == 'failed'")
    failed[["t_ms", "actor", "prev", "value"]].assign(t_s=failed["t_ms"] / 1000)
    """),
    md("""
    That is 15 s after the caller started `checking` (at about 1 s). The 15 s is a
    browser's timer that rtclab reproduces (aiortc left alone would take longer; see
    the README's "rtclab vs a browser"). A loopback Chromium cannot be put behind a NAT,
    but it can run what the caller's side of this call amounts to: checks sent to a
    candidate that never answers. The conformance suite stored that run (one remote
    candidate, a UDP socket that receives and never replies):
    """),
    code("""
    unanswered = data.chromium_trace("RTCPeerConnection-connectionState/unreachable-candidate")
    unanswered.query("actor == 'caller' and name in ['addIceCandidate', 'iceConnectionState', 'connectionState']")[["t_ms", "name", "value"]]
    """),
    md("""
    Chromium gives up about 15 s after `checking` too: `connectionState` goes `failed`
    while `iceConnectionState` shows `disconnected`, as on rtclab's caller. Side by side
    (rtclab left, Chromium right; the time axis turns logarithmic after the first
    second). What Chromium cannot show here is *why* nothing answers: the NATs and their
    filtering below are rtclab's simulation.
    """),
    code("""
    fig = plots.beside(nat, unanswered, plot="states",
                       titles=("rtclab: answer-on-click behind NATs", "Chromium 156: one candidate nobody answers"))
    """),
    md("""
    Why no rescue this time? The caller's checks go to the callee's two candidates: its
    private (host) address, which the simulated internet cannot route, and its
    server-reflexive address on the public side of its NAT. A port-restricted NAT only lets a
    packet in from an outside address and port that the inside host has already sent
    something to. The callee never learned the caller's candidates, so it never sent
    anything to the caller, and its NAT drops every check. The packet rows say so:
    """),
    code("""
    net = nat.events.query("kind == 'net'")
    net["value"].value_counts()
    """),
    md("""
    `dropped` are packets to a private address that the simulated internet cannot route;
    `filtered` are packets a NAT refused. Here are the first few refused ones, with the NAT
    that refused them:
    """),
    code("""
    net.query("value == 'filtered'")[["t_ms", "name", "detail"]].head(5)
    """),
    md("""
    The checks are retransmitted with growing gaps (the `t_ms` column; that schedule is
    aioice's, and the browser traces do not record single checks), and every one meets
    the same closed door until ICE gives up. This is the article's "works on my
    machine": the developer's two test machines sit on one network, where the lost
    candidates do not matter; the users' machines sit behind NATs, where they do.

    ## STUN: the textbook call behind the same NATs

    The `basic` flow loses no candidates: the callee creates its peer connection when the
    offer arrives and adds every candidate. Each side also asks the STUN server "what is my
    address as you see it?", which gives it a **server-reflexive** (`srflx`) candidate on
    its NAT's public side. Here are the candidates each side gathered:
    """),
    code("""
    basic = rtclab.run("basic", topology="nat", record_packets=True)
    gathered = basic.events.query("kind == 'ice' and name == 'candidate' and value == 'gathered'")
    gathered[["actor", "ref"]].join(gathered["detail"].str.split(expand=True)[[4, 5, 7]].set_axis(["address", "port", "type"], axis=1))
    """),
    md("""
    Because both sides send checks to each other's public (srflx) address, each NAT sees
    its own host send a packet out to the other NAT's address and port, and from then on
    lets the other side's checks in. Only a check that arrives before its receiver has sent
    anything out is filtered (count below). The call connects:
    """),
    code("""
    basic.outcome, int((basic.events["value"] == "filtered").sum())
    """),
    md("""
    As each side reports it, the selected pair goes from its own host candidate (the socket
    it sends from, behind its NAT) to the other side's **srflx** candidate:
    """),
    code("""
    basic.events.query("name == 'selected-pair'")[["actor", "value"]]
    """),
    md("""
    ## Symmetric NATs: STUN is not enough, TURN is

    A **symmetric** NAT gives a new public port to every new destination. The port the STUN
    server saw (the srflx candidate) is then *not* the port the peer's checks have to
    reach, and the peer's checks come from a port this NAT has never sent to. With both
    sides behind symmetric NATs and only STUN, the textbook call fails:
    """),
    code("""
    symmetric = rtclab.run("basic", topology="nat", nat="symmetric")
    symmetric.outcome, symmetric.reason
    """),
    md("""
    The way around is a **TURN** server: each side allocates a relayed address on the
    server (a `relay` candidate), and media goes through the relay. Both NATs then only
    ever talk to the TURN server, which they have already sent to. With `turn=True` the
    same call connects, and both sides select a relayed pair:
    """),
    code("""
    relayed = rtclab.run("basic", topology="nat", nat="symmetric", turn=True)
    relayed.outcome, relayed.metrics["selected_pair"]
    """),
    md("""
    A relay costs a server that carries all the media, which is why ICE's priorities
    ([RFC 8445 §5.1.2](https://www.rfc-editor.org/rfc/rfc8445#section-5.1.2)) rank every
    direct pair above a relayed one, so `relay` carries the call only when nothing else
    works.

    From here on the results are rtclab's simulation alone: the stored Chromium runs have
    no NAT, no STUN and no TURN server, so they can neither confirm nor refute what a
    NAT type does to a call.

    ## NAT types × ICE servers

    One `basic` call per NAT type (the same type on both sides), with STUN only and with
    STUN plus TURN. On the simulated network a call is deterministic, so one trial per
    cell is enough.
    """),
    code("""
    grid = {"nat": ["full-cone", "restricted", "port-restricted", "symmetric"], "turn": [False, True]}
    table = rtclab.sweep("basic", trials=1, grid=grid, topology="nat", progress=False, workers=1)
    table.pivot(index="nat", columns="turn", values="outcome").reindex(grid["nat"])
    """),
    md("""
    And the pair that carried the call (empty where it failed). Wherever a direct pair
    works, ICE prefers it, even when a TURN server is configured:
    """),
    code("""
    table.pivot(index="nat", columns="turn", values="selected_pair").reindex(grid["nat"])
    """),
    md("""
    ## Fix the code

    "It works on my machine" in code: the callee below never adds the caller's
    candidates. On a flat network the call connects anyway, because the callee learns the
    caller's address from its connectivity checks; behind NATs nothing comes through.

    **Edit the cell** so the callee uses the candidates it receives. The check plays the
    textbook caller against your callee on a LAN and behind NATs, and passes when every
    call connects and no candidate is lost. As given, it fails:
    """),
    code("""
    async def my_callee(app):
        pc = None

        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                pc = app.RTCPeerConnection()
                pc.on("icecandidate", lambda candidate: app.send(
                    {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))
                await pc.setRemoteDescription(msg["sdp"])
                for track in app.getUserMedia():
                    pc.addTrack(track)
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate":
                pass  # "works on my machine" without them

        app.on_message(on_message)
    """),
    code("""
    rtclab.exercises.check_04(my_callee)
    """),
    md("""
    Look at the LAN line: connected, and still a FAIL. A test on one flat network would
    have passed this code. The solution is in notebook 10.
    """),
    md("""
    ## Summary

    * On a flat network a call can connect although one side lost all the other's
      candidates: the connectivity checks themselves reveal the missing address
      (a peer-reflexive candidate). That is why the timing trap of notebook 03 can hide on
      a developer's LAN.
    * Behind NATs that filter incoming packets, each side must have the other's candidates
      and send to them; the same app then fails, after ICE has retried for a long time.
    * STUN (server-reflexive candidates) is enough behind cone-like and port-restricted NATs;
      behind symmetric NATs only a TURN relay gets through.
    * Chromium 156, on loopback, shows the ICE half of the story: it learns a
      peer-reflexive candidate from incoming checks, and it fails about 15 s after
      `checking` when nothing answers. The NAT half has no browser run behind it here.
    * The NATs here are a model of RFC 4787's behaviours, useful to understand the
      mechanism; real networks have more variety.

    **Try this**

    1. Mix NAT types: `rtclab.run("basic", topology="nat", nat=("full-cone", "symmetric"))`.
       Does STUN alone get through when only one side is symmetric?
    2. Run `answer-on-click` with `topology="nat", nat="full-cone"`. A full-cone NAT lets in
       packets from anyone once a mapping exists. Does the peer-reflexive rescue come back?
    3. In the failed `answer-on-click` run, count the caller's checks that reached the NAT
       (`filtered` rows) and compare their spacing with the ICE retransmission rules of
       [RFC 8445 §14.3](https://www.rfc-editor.org/rfc/rfc8445#section-14.3).
    """),
]
