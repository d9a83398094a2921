from build import code, md

CELLS = [
    md("""
    # 8 · Timeouts: how long a browser waits before a call fails

    **Overview.** A call that fails is annoying; a call that *neither connects nor fails*
    is worse, because the page never learns that it should tell the user. This notebook
    looks at three ways a call can go wrong, each time in rtclab (on the simulated
    network's virtual clock, so a minute of waiting takes a fraction of a second) and,
    next to it, in Chromium 156, from traces the conformance suite stored:

    * (a) no candidates are exchanged at all: nothing ever happens, the states stay `new`,
    * (b) candidates arrive but none can be reached: the browser gives up after ~15 s,
    * (c) a connected call loses its network path: `disconnected` after ~6 s, `failed`
      ~16 s after the cut, and the two state machines no longer agree.

    Each section ends with what this means for the page's own timers.

    **Time:** about 25 minutes. **Prerequisites:** 01 (the ICE connection and connection
    state machines) and 03 (candidates and end-of-candidates).
    """),
    code("""
    %matplotlib inline
    import rtclab
    from rtclab import data, plots


    def seconds(ev, query):
        \"\"\"Time of the first row of ``ev`` matching ``query``, in seconds.\"\"\"
        return ev.query(query, engine="python")["t_ms"].min() / 1000
    """),
    md("""
    ## (a) Forgotten candidates: nothing happens, and nothing says so

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
    Offer and answer went through, and then nothing. Both ICE state machines stayed `new`
    for the whole 90 seconds: with no remote candidate there is not a single pair to test,
    so the W3C state machine has no reason to leave `new`, let alone to fail. The only
    rows are rtclab closing both peers at the deadline:
    """),
    code("""
    forgot.events.query("kind == 'state' and name in ['iceConnectionState', 'connectionState']")[["t_ms", "actor", "name", "value", "prev"]]
    """),
    md("""
    Chromium does exactly this. The conformance suite made two peer connections in one
    page, negotiated a data channel and never passed a candidate: the stored trace has
    no `checking` and no `connecting`, only `closed` when the scenario ended after 3 s.
    Side by side, rtclab's 90 s on the left and Chromium's 3 s on the right (each on its
    own time axis):
    """),
    code("""
    chromium_none = data.chromium_trace("RTCPeerConnection-iceConnectionState/no-candidates-exchanged")
    fig = plots.beside(forgot, chromium_none, plot="states",
                       titles=("rtclab: forgot-candidates", "Chromium 156: no candidates exchanged"))
    """),
    code("""
    for label, ev in [("rtclab", forgot.events), ("Chromium 156", chromium_none)]:
        states = ev.query("kind == 'state' and name in ['iceConnectionState', 'connectionState']")
        left_new = sorted(set(states["value"]) - {"closed"}) or "never (only closed, at the end)"
        print(f"{label}: ICE or connection state left new for: {left_new}")
    """),
    md("""
    **What it means for the page.** A tempting design is "start a timer when ICE starts
    `checking`, and hang up if it is not `connected` 20 seconds later". In this call,
    in rtclab and in Chromium, `checking` never comes, so that timer never starts and the
    user waits forever (Chromium 156, watched for 90 s: both peers still `new`). Start the timer when the *call* starts (the click on *Call*, or
    the arrival of the offer) and stop it at `connected`. (aiortc on its own says
    `checking` here; the README's "rtclab vs a browser" table lists such differences.)

    ## (b) Unreachable candidates: failed after ~15 seconds

    Now the textbook `basic` call, candidates and end-of-candidates included, on a
    network that loses every packet between the peers (`link_loss=1.0`) and without STUN
    (`stun=False`). Every candidate message arrives; every connectivity check is lost.
    """),
    code("""
    lost = rtclab.run("basic", link_loss=1.0, stun=False)
    print(lost.outcome, "-", lost.reason)
    lost.events.query("kind == 'state' and name in ['iceConnectionState', 'connectionState'] and value != 'closed'")[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    Three things to read in that table:

    * the peers leave `new` only when a remote candidate arrives: now there is a pair to
      check, so `checking` (and `connecting`);
    * about 15 s later the connection `failed` (the run ends at the first failure, so the
      other side's rows stop there);
    * at that moment `iceConnectionState` says `disconnected`, not `failed`: the two state
      machines already disagree (more in (c)).

    Does end-of-candidates make the failure come sooner? The `article` flow sends no
    end-of-candidates (like MDN's sample, it forwards only real candidates). Same lossy
    network:
    """),
    code("""
    no_end = rtclab.run("article", link_loss=1.0, stun=False)
    print(no_end.outcome, "-", no_end.reason)
    """),
    md("""
    Chromium, in two stored scenarios: one unreachable candidate (a socket that never
    answers) given to the caller, once alone and once followed by end-of-candidates. The
    time from `checking` to `failed`, in all four runs:
    """),
    code("""
    runs = {
        "rtclab, end-of-candidates (basic)": lost.events,
        "rtclab, no end-of-candidates (article)": no_end.events,
        "Chromium 156, end-of-candidates": data.chromium_trace("RTCPeerConnection-connectionState/unreachable-candidate-end-of-candidates"),
        "Chromium 156, no end-of-candidates": data.chromium_trace("RTCPeerConnection-connectionState/unreachable-candidate"),
    }
    for label, ev in runs.items():
        checking = seconds(ev, "name == 'iceConnectionState' and value == 'checking'")
        failed = seconds(ev, "name == 'connectionState' and value == 'failed'")
        print(f"{label:40s} failed {failed - checking:4.1f} s after checking started")
    """),
    md("""
    About 15 seconds every time, with or without end-of-candidates. End-of-candidates does
    not cut the wait short, and that is by design: [RFC 8863](https://www.rfc-editor.org/rfc/rfc8863)
    asks an ICE agent not to declare failure before its "patiently awaiting connectivity"
    timer has run out, whatever the candidates look like, because a peer-reflexive
    candidate can still turn up from the other side's checks (it recommends 39.5 s;
    Chromium 156 waits ~15 s). rtclab emulates Chromium's 15 s; aiortc on its own follows
    its STUN retransmission schedule instead: about a minute with end-of-candidates
    (63.5 s), and without it, it never fails.

    The states side by side: rtclab's `basic` call on the left, Chromium with
    end-of-candidates on the right.
    """),
    code("""
    fig = plots.beside(lost, runs["Chromium 156, end-of-candidates"], plot="states",
                       titles=("rtclab: basic, every packet lost", "Chromium 156: unreachable candidate"))
    """),
    md("""
    **What it means for the page.** Watch `connectionState` for `failed`, not
    `iceConnectionState`: here the latter only ever says `disconnected`. And ~15 s is the
    browser's figure, not yours: if the product should give up earlier (or show "still
    trying…"), that is the page's own timer again.

    ## (c) A connected call loses its path

    Once connected, each peer keeps checking that the other still answers: *consent
    freshness*, [RFC 7675](https://www.rfc-editor.org/rfc/rfc7675). Here a `basic` call
    stays up for 60 virtual seconds (`hold_s=60`), and the simulated network cuts the path
    between the two peers at 5 s (`cut_at_s=5`; signaling and STUN still work, only the
    media path breaks).
    """),
    code("""
    cut = rtclab.run("basic", hold_s=60, cut_at_s=5)
    print(cut.outcome, "-", cut.reason)
    cut.events.query("kind == 'net' or (kind == 'state' and name in ['iceConnectionState', 'connectionState'] and t_ms > 1000)")[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    The outcome is `connected`: the call did connect and media flowed before the cut. Then
    both peers go `disconnected`, and some ten seconds later `connectionState` is `failed`
    (the run ends there, and rtclab closes both peers). `iceConnectionState` never says
    `failed`: it stays `disconnected`.

    Chromium, with the same steps: two peer connections whose packets all cross a small
    UDP relay, which the suite stops forwarding half a second after they connect. Seconds
    after the cut, in both:
    """),
    code("""
    chromium_cut = data.chromium_trace("RTCPeerConnection-iceConnectionState/path-cut")
    for label, ev in [("rtclab", cut.events), ("Chromium 156", chromium_cut)]:
        t_cut = seconds(ev, "name == 'cut'")
        disconnected = seconds(ev, "name == 'connectionState' and value == 'disconnected'") - t_cut
        failed = seconds(ev, "name == 'connectionState' and value == 'failed'") - t_cut
        ice_failed = (ev.query("name == 'iceConnectionState'")["value"] == "failed").any()
        print(f"{label:13s} disconnected after {disconnected:4.1f} s, connectionState failed after {failed:4.1f} s, "
              f"iceConnectionState ever failed: {ice_failed}")
    """),
    md("""
    Both say `disconnected` about 6 s after the cut and `failed` about 16 s after it,
    and in neither does `iceConnectionState` reach `failed` (in a longer Chromium
    measurement it still said `disconnected` more than 75 s after the cut). rtclab's
    timers were set from Chromium's measurement, so the agreement is by construction; the
    point of the stored trace is that you can check it. The state plots (`failed` comes at
    the very right edge, where each run closes its peers, so its band is too thin to see):
    """),
    code("""
    fig = plots.beside(cut, chromium_cut, plot="states",
                       titles=("rtclab: basic, path cut at 5 s", "Chromium 156: path cut"))
    """),
    md("""
    **The RFC's timers and the browser's.** RFC 7675 describes consent freshness as a
    check every ~5 s (randomised) and gives consent up after 30 s without an answer; at
    that point the endpoint must stop sending. It says nothing about the W3C states. What
    Chromium 156 shows the page is different and faster: `disconnected` after ~6 s
    without answers, `connectionState` `failed` after ~16 s, and an `iceConnectionState`
    that stays `disconnected`. RFC 7675 sets the consent timers; the W3C states leave their timing to the browser,
    and Chromium's come from libwebrtc's own connection timers. The page only ever sees
    the browser's.

    **What it means for the page.** `disconnected` is not the end of a call: the path may
    come back (notebook 12 shows a call recovering by itself, and one brought back with
    `restartIce()`). `failed` on `connectionState` is the signal to act. An app that waits
    for `iceConnectionState == "failed"` after a cut still waits in Chromium as long as it was watched (75 s).
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
    Nothing raised and nothing was lost: there was simply nothing to connect with, and both
    peers stayed `new`. That is what makes this bug slow to find in a browser. The solution
    is in notebook 10.
    """),
    md("""
    ## Summary

    * No candidates exchanged: both state machines stay `new`, in rtclab and in Chromium.
      No event will ever come; a timer started on `checking` never starts. Start it when
      the call starts.
    * Candidates that can't be reached: `checking`, then `connectionState` `failed` ~15 s
      later, with or without end-of-candidates (RFC 8863: no early failure), while
      `iceConnectionState` shows `disconnected`.
    * A path that breaks during a call: `disconnected` ~6 s after the cut, `failed`
      ~16 s after it on `connectionState` only; `iceConnectionState` stays `disconnected`.
      RFC 7675's 30-second consent expiry is not what the page sees.
    * rtclab's peers are aiortc with Chromium's timers emulated on a virtual clock; the
      stored Chromium traces are the measurement they follow.

    **Try this**

    1. Give `forgot-candidates` a shorter deadline (`deadline_s=5`). What changes in the
       outcome and the reason?
    2. In (b), keep `link_loss=1.0` but turn STUN back on. When does `checking` start now,
       and is the time from `checking` to `failed` still ~15 s?
    3. In (b), try `link_loss=0.5`. Does the call connect, and how much later than with no
       loss?
    4. In (c), cut the path earlier (`cut_at_s=1`) or later (`cut_at_s=20`, with
       `hold_s=60`): are `disconnected` and `failed` always the same time after the cut?
    5. In (c), let the path come back after 4 s (`cut_for_s=4`), then after 10 s. Which
       call goes `disconnected`, and does either come back to `connected`? (Notebook 12
       goes further.)
    """),
]
