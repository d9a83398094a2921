from build import code, md

CELLS = [
    md("""
    # 13 · Call control and privacy: who sees what before the user says yes

    **Overview.** The early answer of notebooks 05 and 11 makes answering quick because
    the call is set up while the phone rings. That speed has a price, paid before the
    person has decided anything: the caller's app may already be receiving the callee's
    network addresses, and in one of the flows the callee is already receiving the
    caller's video. This notebook separates what WebRTC does from what the app must do:

    * *accept* and *decline* are messages of the app, not of WebRTC;
    * `track.muted` belongs to the browser and describes a *received* track; an app that
      wants to hold back what it *sends* has its own switches;
    * which of the callee's addresses reach the caller before the click, flow by flow
      (RFC 8828 is the IETF's text on this);
    * a callee that offers only a TURN relay until the user accepts, then allows every
      path with an ICE restart;
    * a declined call, and what it leaves behind.

    **Time:** about 25 minutes. **Prerequisites:** 04 (NATs, STUN and TURN), 05 (the early
    answer), 11 (the article's flow and `replaceTrack`).
    """),
    code("""
    %matplotlib inline
    import pandas as pd
    import rtclab
    from rtclab import data, plots
    """),
    md("""
    ## Accept and decline are the app's messages

    WebRTC has no notion of a call being accepted. An offer and an answer conclude a
    negotiation (RFC 3264), and a connection that has negotiated connects, whether or not
    anybody clicked anything. So the `counteroffer` flow carries the person's decision in
    two messages of its own, next to the MDN sample's `video-offer` and `video-answer`:
    `call-accepted` and `call-declined`. Read how each side reacts to them:
    """),
    code("""
    print(rtclab.flow_source("counteroffer", helpers=False))
    """),
    md("""
    `app.user.decide()` rings and returns the user's choice. In a scripted run the choice
    is the run's `decision` parameter (`"accept"` by default); here the user declines.
    """),
    code("""
    declined = rtclab.run("counteroffer", topology="nat", decision="decline")
    print(declined.outcome, "-", declined.reason)
    declined.events.query("kind == 'user' or name in ['call-declined', 'close', 'getUserMedia', 'replaceTrack', 'first-frame']")[["t_ms", "actor", "kind", "name", "value", "detail"]]
    """),
    md("""
    The callee's page never opened its camera (no `getUserMedia` row for the callee), and
    the caller kept its own camera off the wire with `replaceTrack(None)` from the start.
    Neither side decoded a single frame:
    """),
    code("""
    frames = declined.events.query("kind == 'media' and name == 'first-frame'")
    print("first frames in the declined call:", len(frames))
    print("callee camera opened:", ((declined.events.actor == "callee") & (declined.events.name == "getUserMedia")).any())
    """),
    md("""
    ## Muted is the browser's word, not the app's

    `track.muted` is a property of a *received* track, and the browser alone sets it. When
    the remote description creates a receiver, the `track` event hands the page a track
    that is muted, because nothing has arrived yet; when the first media packet arrives,
    the browser unmutes it and fires `unmute`. An app cannot mute a remote track, and it
    does not mute its own camera by writing to `muted` either.

    rtclab's rows for an accepted `counteroffer` call: `track` with `muted` at
    `setRemoteDescription`, `unmute` when the first packet arrives, then the first
    decoded frame.
    """),
    code("""
    accepted = rtclab.run("counteroffer", topology="nat")
    accepted.events.query("kind == 'media' or (kind == 'call' and name == 'setRemoteDescription')")[["t_ms", "actor", "kind", "name", "value", "detail"]]
    """),
    md("""
    The same steps in Chromium 156, stored by the conformance suite: the page noted that
    `track` fired while `setRemoteDescription` was running, that the track was muted at
    that moment, and when `unmute` came: after the connection, shortly before the first
    frame, as in rtclab.
    """),
    code("""
    chromium_mute = data.chromium_trace("RTCPeerConnection-ontrack/muted-until-first-packet")
    chromium_mute.query("actor == 'callee' and (kind == 'media' or name.str.startswith('observe') or name == 'setRemoteDescription')", engine="python")[["t_ms", "actor", "name", "value"]]
    """),
    code("""
    fig = plots.beside(accepted, chromium_mute, plot="sequence",
                       titles=("rtclab: counteroffer, accepted", "Chromium 156: track muted until the first packet"))
    """),
    md("""
    ### What an app uses to hold back what it sends

    Three switches keep a page's own camera from the other side. What each does on the
    wire is written in the W3C specifications (webrtc-pc and Media Capture):

    | the app does | what the sender sends |
    | --- | --- |
    | `sender.replaceTrack(null)` | no media at all on that sender, until a track is put back |
    | `transceiver.direction = "recvonly"` (or `"inactive"`) | nothing, once the change has been negotiated |
    | `track.enabled = false` | black frames (silence for audio): the stream goes on, its content is blanked |

    `counteroffer` uses the first on both sides; with no packets arriving, the track the
    other side received stays muted. In the stored Chromium run of
    `counteroffer` with a browser as the callee, the Chromium page received its first
    frame only after the caller had `call-accepted` and put its camera back:
    """),
    code("""
    chromium_co = data.chromium_trace("counteroffer-browser-callee")
    chromium_co.query("name in ['call-accepted', 'replaceTrack', 'first-frame'] or kind == 'user'")[["t_ms", "actor", "kind", "name", "value", "detail"]]
    """),
    md("""
    ### The article's flow shows the caller's camera before the click

    The article's flow (`article`, notebook 11) has no gate on the caller's side: the
    caller adds its camera with `addTrack` and offers it, the callee answers at once, and
    as soon as ICE and DTLS are up the caller's video flows. The callee's page decodes the
    caller's first frame while the phone is still ringing:
    """),
    code("""
    art = rtclab.run("article", topology="nat")
    click = art.metrics["t_answer_click_ms"]
    first = art.events.query("actor == 'callee' and name == 'first-frame'")
    print(f"the callee's user clicks Answer at {click:.0f} ms")
    print(first[["t_ms", "actor", "name", "value"]].to_string(index=False))
    print("caller's video at the callee before the click:", bool((first.t_ms < click).any()))
    """),
    md("""
    A page might not display that video, but it has it: the person on the other end is
    already being streamed to a stranger's browser. Any flow that connects before
    acceptance and does not gate the sender does the same.

    ## Which addresses leave before the click

    Each ICE candidate carries an address: a `host` candidate the machine's own address
    (often a private one), a server-reflexive (`srflx`) candidate the public address its
    NAT maps it to, a `relay` candidate the TURN server's. A candidate that reaches the
    other app tells that app, and whoever runs it, where the callee is. RFC 8828 asks
    browsers to limit which addresses a page can learn; an app that connects before its
    user has accepted gives them away anyway.

    `rtclab.exposed_candidates(run)` reads, from the frame only, every candidate of the
    callee that was *delivered* to the caller's app, and whether that happened before the
    callee's user clicked. One call per flow behind NATs, with a TURN server in the
    network:
    """),
    code("""
    def before_click(flow):
        exposed = rtclab.exposed_candidates(rtclab.run(flow, topology="nat", turn=True))
        early = exposed[exposed.before_decision]
        return {"flow": flow, "delivered": len(exposed), "before the click": len(early),
                "addresses before the click": ", ".join(f"{t} {a}" for t, a in zip(early["type"], early["address"])) or "-"}

    exposure = pd.DataFrame([before_click(f) for f in ["counteroffer", "article", "queue-on-click", "relay-until-accepted"]])
    print(exposure.to_string(index=False))
    """),
    md("""
    * `counteroffer` and `article` create the callee's peer connection when the offer
      arrives, so the callee gathers and trickles right away: its private address, its
      public NAT address and its relay all reach the caller during the ring;
    * `queue-on-click` creates the connection only on the click (queuing the caller's
      early candidates, notebook 03), so nothing of the callee leaves before. The price is
      speed: ICE starts at the click;
    * `relay-until-accepted` (next section) sends one candidate before the click, and its
      address is the TURN server's.

    Chromium does the same as rtclab here: in the stored `counteroffer` run with Chromium
    as the callee, the browser's host candidate was delivered to the caller well before
    the person clicked.
    """),
    code("""
    print(rtclab.exposed_candidates(chromium_co).to_string(index=False))
    print("Answer clicked at", chromium_co.query("kind == 'user' and name == 'click' and value == 'answer'")["t_ms"].iloc[0], "ms")
    """),
    md("""
    (That page ran in an isolated loopback-only network, so its only address is
    `127.0.0.1`; on a real machine it would be the machine's LAN address, or an mDNS
    `.local` name when the page has no camera permission.)

    ## Relay only until the user accepts

    A browser can be told to gather relay candidates only:
    `new RTCPeerConnection({iceTransportPolicy: "relay"})`. Such a connection never
    offers its host or server-reflexive addresses; the other side learns the TURN
    server's address and nothing else. rtclab's apps ask for it the same way,
    `app.RTCPeerConnection({"iceTransportPolicy": "relay"})`.

    The `relay-until-accepted` flow is `counteroffer` with such a callee. Once the user
    accepts, a direct path is welcome, so the callee switches the policy back to `all`.
    The W3C specification says what `setConfiguration` does with a new
    `iceTransportPolicy`: nothing until the next gathering; a page that wants the new
    policy now restarts ICE. `restartIce()` makes the browser ask for negotiation, the
    callee offers with new ICE credentials, and both sides gather again.
    """),
    code("""
    print(rtclab.flow_source("relay-until-accepted", helpers=False))
    """),
    code("""
    relay = rtclab.run("relay-until-accepted", topology="nat", turn=True, hold_s=1)
    print(relay.outcome, "-", relay.reason)
    print(rtclab.exposed_candidates(relay).to_string(index=False))
    """),
    md("""
    Before the click the caller received one candidate, a `relay` candidate whose address
    is the TURN server's (its related address is blank, `0.0.0.0:9`). The call connected
    through the relay while the phone rang. After the click came the restart: new
    credentials, every candidate type, and a new selected pair.
    """),
    code("""
    relay.events.query("(kind == 'ice' and name in ['restart', 'selected-pair']) or name in ['setConfiguration', 'restartIce', 'call-accepted']")[["t_ms", "actor", "kind", "name", "value"]]
    """),
    md("""
    ### The same switch in Chromium

    The conformance suite ran the switch in Chromium 156 (no TURN server in its isolated
    network, so the relay-only connection gathers nothing at all). The page noted the
    candidates its relay-only connection had gathered, the count half a second after
    `setConfiguration({iceTransportPolicy: "all"})`, and the count after `restartIce()`
    and a new offer/answer:
    """),
    code("""
    chromium_policy = data.chromium_trace("RTCConfiguration-iceTransportPolicy/relay-then-all-after-restartIce")
    chromium_policy.query("actor == 'caller' and (name.str.startswith('observe') or name in ['setConfiguration', 'restartIce'])", engine="python")[["t_ms", "name", "value"]]
    """),
    md("""
    Chromium gathered no candidate under `relay`, none right after `setConfiguration`, and
    host candidates after `restartIce()`: the new policy applies from the next gathering,
    as the specification says. rtclab gives the same answer in the flow above, with one
    limit that the conformance table records: its `restartIce()` works only on a
    connection that has connected once (it splices a fresh aioice connection into the
    connected one). A relay-only callee with no TURN server never connects, so rtclab
    records `NotSupportedError` where Chromium would gather again.

    ### Declining a relay-only call

    Declined, the relay-only callee leaves the caller with the TURN server's address and
    nothing else, and no frame crossed in either direction:
    """),
    code("""
    relay_declined = rtclab.run("relay-until-accepted", topology="nat", turn=True, decision="decline")
    print(relay_declined.outcome, "-", relay_declined.reason)
    print(rtclab.exposed_candidates(relay_declined)[["type", "address", "before_decision"]].to_string(index=False))
    print("first frames:", (relay_declined.events.name == "first-frame").sum())
    """),
    md("""
    ## Summary

    * WebRTC has no accept or decline: a negotiated connection connects. The app says what
      the person decided with its own messages (`call-accepted`, `call-declined`) and
      closes the connection on a decline.
    * `track.muted` is set by the browser on a received track: muted when the remote
      description creates it, `unmute` at the first packet (rtclab and Chromium 156 alike).
      To hold back what it sends, an app uses `replaceTrack(null)`, the transceiver's
      direction, or `track.enabled = false` (which still sends black frames).
    * Connecting before acceptance without a gate streams the caller's camera to the
      callee during the ring (`article`).
    * Connecting before acceptance reveals the callee's host, public and relay addresses
      to any caller (`counteroffer`, `article`); creating the connection on the click
      (`queue-on-click`) reveals nothing but costs answering speed;
      `iceTransportPolicy: "relay"` until the click reveals only the TURN server, and an
      ICE restart afterwards opens every path.

    **Try this**

    1. Run `counteroffer` declined behind NATs with a TURN server (`topology="nat",
       turn=True, decision="decline"`). Which of the callee's addresses does the caller
       know although the user said no?
    2. Run `relay-until-accepted` without a TURN server (`turn=False`). What does the
       callee gather before the click, what happens to the call, and which part of the
       result is rtclab's limit rather than a browser's behaviour?
    3. Change the article's caller so that its camera stays off the wire until the callee
       accepts: gate it with `replaceTrack(None)` and open the gate when the callee's
       re-offer arrives. Check that the callee's first frame now comes after the click.
    """),
]
