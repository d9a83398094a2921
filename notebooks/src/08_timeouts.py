from build import code, md

CELLS = [
    md("""
    # 8 · Timeouts: calls that hang, and how long ICE takes to give up

    **Overview.** A failed call is annoying; a call that *neither connects nor fails*
    is worse, because the app never learns that it should tell the user. This notebook
    looks at three ways a call can hang, all on the simulated network's virtual clock,
    so that a minute of waiting takes a fraction of a second:

    * (a) no candidates and no end-of-candidates: ICE waits forever,
    * (b) candidates that can't be reached: ICE fails, but only after tens of seconds,
    * (c) a connected call whose network path breaks: consent expiry ends it some
      tens of seconds later.

    **Prerequisites.** 01 (the ICE connection and connection state machines) and
    03 (candidates and end-of-candidates).
    """),
    code("""
    import rtclab
    """),
    md("""
    ## (a) Forgotten candidates: checking forever

    The `forgot-candidates` flow is the textbook call with one line missing on both
    sides: the `icecandidate` handler. The descriptions carry no candidates (trickle
    ICE), and no candidate message is ever sent, not even end-of-candidates.
    """),
    code("""
    print(rtclab.flow_source("forgot-candidates"))
    """),
    md("""
    Every run has a deadline, in virtual seconds on the simulated network. Here it is
    set explicitly to 90 s:
    """),
    code("""
    forgot = rtclab.run("forgot-candidates", deadline_s=90)
    print(forgot.outcome, "-", forgot.reason)
    """),
    md("""
    Offer and answer went through, but no candidate was sent, and ICE was still
    `checking` when the deadline came: with no remote candidate ICE has no pair to
    test, but without end-of-candidates it must assume more candidates may still
    come, so it never declares failure. The
    `closed` rows are rtclab closing both peers at the deadline.
    """),
    code("""
    forgot.events.query("kind == 'state' and name == 'iceConnectionState'")[["t_ms", "actor", "value", "prev"]]
    """),
    code("""
    forgot.metrics[["candidates_gathered", "candidates_sent", "t_connected_ms", "duration_ms"]]
    """),
    md("""
    In a browser this call would sit in `checking` until the user gives up. An app
    needs its own timer for this case; no WebRTC event will come.

    ## (b) Unreachable candidates: failure after tens of seconds

    Now the textbook `basic` call, candidates and end-of-candidates included, but on a
    network that loses every packet (`link_loss=1.0`) and without STUN
    (`stun=False`, so gathering does not wait for a STUN server either). Every
    candidate arrives, every connectivity check is lost.
    """),
    code("""
    lost = rtclab.run("basic", link_loss=1.0, stun=False)
    print(lost.outcome, "-", lost.reason)
    """),
    md("""
    This time ICE does fail, because end-of-candidates told it that no other
    candidate will come (the callee gives up first; the run then ends and rtclab
    closes both peers). But look at *when*, in virtual milliseconds:
    """),
    code("""
    lost.events.query("kind == 'state' and name in ['iceConnectionState', 'connectionState'] and value != 'closed'")[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    ICE sends each connectivity check as a STUN request and retransmits it with a
    timeout that doubles after each try; a pair fails only when the last retry goes
    unanswered. The time above follows aioice's retransmission schedule (the
    general scheme is in [RFC 5389 §7.2.1](https://www.rfc-editor.org/rfc/rfc5389#section-7.2.1);
    browsers use their own timers, so their figure differs). The cell itself ran in
    well under a second of wall time: the simulated network's virtual clock jumps
    from one timer to the next instead of waiting.

    ## (c) Consent expiry: a connected call loses its path

    Once connected, each peer keeps asking the other, every few seconds, whether it
    still wants the media: *consent freshness*, [RFC 7675](https://www.rfc-editor.org/rfc/rfc7675).
    If the answers stop, consent expires and the connection ends. Here a `basic` call
    stays up for 60 virtual seconds (`hold_s=60`), and the simulated network cuts the
    path between the two peers at 5 s (`cut_at_s=5`).
    """),
    code("""
    cut = rtclab.run("basic", hold_s=60, cut_at_s=5)
    print(cut.outcome, "-", cut.reason)
    """),
    md("""
    The outcome is `connected`: the call did connect and media flowed before the cut.
    The connection states tell the rest of the story:
    """),
    code("""
    cut.events.query("kind == 'state' and name == 'connectionState'")[["t_ms", "actor", "value", "prev"]]
    """),
    md("""
    aiortc reports the end of consent as `closed`. A browser would report
    `disconnected` a few seconds after the checks stop being answered, then `failed`
    when consent expires (README, "rtclab vs a browser"). How long after the cut did
    the first peer close, in seconds?
    """),
    code("""
    closed_ms = cut.events.query("name == 'connectionState' and value == 'closed'")["t_ms"].min()
    print(round((closed_ms - cut.params["cut_at_s"] * 1000) / 1000, 1), "s after the cut")
    """),
    md("""
    Some tens of seconds, the order of RFC 7675's consent timeout: while they wait,
    both users look at a frozen picture.

    """),
    md("""
    ## Fix the code

    Both apps below forget to send their candidates: neither has an `icecandidate`
    handler. Offer and answer go through, and then nothing happens until the deadline.

    **Edit the cell** so both sides trickle their candidates. The check plays your caller
    and callee with a 40-second deadline, on a LAN and behind NATs, and passes when every
    call connects. As given, every call runs into the deadline:
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
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        pc.on("negotiationneeded", on_negotiationneeded)
        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)


    async def my_callee(app):
        pc = None

        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                pc = app.RTCPeerConnection()
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
    rtclab.exercises.check_08(my_caller, my_callee)
    """),
    md("""
    Nothing raised and nothing was lost: there was simply nothing to connect with. That
    is what makes this bug slow to find in a browser. The solution is in notebook 10.
    """),
    md("""
    ## Summary

    * No candidates and no end-of-candidates: ICE stays in `checking` forever. Only
      the app's own timer (here the run's deadline) ends the call.
    * Candidates that can't be reached: ICE fails, but only after the STUN
      retransmissions run out, tens of seconds later.
    * A path that breaks during a call: consent expiry ends it, again tens of seconds
      later; aiortc says `closed`, browsers say `disconnected` then `failed`.
    * The simulated network is a model with a virtual clock; the timers are aioice's
      real ones, which is why the waits match a real aiortc peer, not a browser.

    **Try this**

    1. Give `forgot-candidates` a shorter deadline (`deadline_s=5`). What changes in
       the outcome and the reason?
    2. In (b), keep `link_loss=1.0` but turn STUN back on. Does gathering now take
       longer, and does ICE fail at a different time?
    3. In (b), try `link_loss=0.5`. Does the call connect, and how much later than
       with no loss?
    4. In (c), cut the path earlier (`cut_at_s=1`) or later (`cut_at_s=20`, with
       `hold_s=60`): is the time between the cut and `closed` always about the same?
    """),
]
