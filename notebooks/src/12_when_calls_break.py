from build import code, md

CELLS = [
    md("""
    # 12 · When calls break: disconnected, failed, and recovering

    **Overview.** Networks drop out: a train enters a tunnel, a laptop hops from one Wi-Fi
    access point to the next, a home router reboots. Notebook 08 measured how long the
    browser waits before it reports trouble. This notebook is about what the *page* does
    then:

    * `disconnected` is a warning, not a verdict: a short outage heals by itself, and the
      call goes back to `connected` without any help from the page;
    * the MDN sample closes the call on `disconnected`, so it throws away calls the browser
      would have kept;
    * `failed` (on `connectionState`) is the verdict: once there, the call stays broken
      even when the network comes back, until the page asks for an ICE restart with
      `restartIce()`;
    * the page's own timers, and where each one starts and stops.

    Every run cuts the simulated network's path between the two peers (`cut_at_s`) and,
    new here, lets it come back after a while (`cut_for_s`). Signaling keeps working
    during the cut in these runs; that is an assumption (in real life the page's
    connection to its signaling server may break too, and must then be reopened before
    anything can be renegotiated). Chromium 156 did the same steps
    with a UDP relay that stopped and resumed forwarding; its stored traces are shown
    next to rtclab's runs.

    **Time:** about 30 minutes. **Prerequisites:** 08 (the browser's timers), 01 (the four
    state machines); 11 helps for renegotiation.
    """),
    code("""
    %matplotlib inline
    import rtclab
    from rtclab import data, plots

    STATES = "kind == 'net' or (kind == 'state' and name in ['iceConnectionState', 'connectionState'] and t_ms > 1000)"
    """),
    md("""
    ## A short outage heals by itself

    A `basic` call; the path between the peers is cut 5 s in and comes back 10 s later
    (at 15 s). The call is kept up for 30 s in all (`hold_s=30`).
    """),
    code("""
    short = rtclab.run("basic", hold_s=30, cut_at_s=5, cut_for_s=10)
    print(short.outcome, "-", short.reason)
    short.events.query(STATES)[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    About 6 s after the cut both peers say `disconnected`. While they are disconnected
    they keep sending their consent checks on the same candidate pair
    ([RFC 7675](https://www.rfc-editor.org/rfc/rfc7675)); the first one answered after
    the path is back turns both state machines to `connected` again, on the same pair,
    with no new offer, no new candidates, nothing done by the page. (The `closed` rows at
    the end are rtclab hanging up after 30 s.)

    Chromium, same story: connected, relay stopped, both `disconnected` ~6 s later, relay
    forwarding again one second after that. The conformance suite stored it as
    `path-heals`:
    """),
    code("""
    chromium_heals = data.chromium_trace("RTCPeerConnection-iceConnectionState/path-heals")
    chromium_heals.query(STATES.replace("t_ms > 1000", "t_ms > 500"))[["t_ms", "actor", "name", "value"]]
    """),
    code("""
    for label, ev in [("rtclab", short.events), ("Chromium 156", chromium_heals)]:
        back = ev.query("value == 'path restored'")["t_ms"].min()
        again = ev.query("name == 'connectionState' and value == 'connected' and t_ms > @back")["t_ms"].max()
        print(f"{label:13s} both connected again {(again - back) / 1000:.2f} s after the path came back")
    """),
    md("""
    Chromium came back within a few tens of milliseconds of the relay forwarding again.
    rtclab's emulated consent checks go out once a second, so it can take up to a second,
    depending on when the next check leaves (here one left soon after). Both come back
    without any action of the page.
    Side by side (each plot on its own time axis):
    """),
    code("""
    fig = plots.beside(short, chromium_heals, plot="states",
                       titles=("rtclab: basic, path cut 5 s to 15 s", "Chromium 156: path cut, then back"))
    """),
    md("""
    The W3C specification warns about exactly this: `disconnected` can come and go on an
    unreliable network, so it should not end a call.

    ## The MDN sample hangs up on `disconnected`

    The MDN sample (the `mdn` flow is the sample as written) watches
    `iceConnectionState` and closes the call on `closed`, `failed` *and* `disconnected`:
    """),
    code("""
    mdn_source = rtclab.flow_source("mdn", helpers=False).splitlines()
    start = next(i for i, line in enumerate(mdn_source) if "def handle_ice_connection_state_change_event" in line)
    print("\\n".join(mdn_source[start:start + 4]))
    """),
    md("""
    The same 10-second outage:
    """),
    code("""
    mdn = rtclab.run("mdn", hold_s=30, cut_at_s=5, cut_for_s=10)
    mdn.events.query(STATES)[["t_ms", "actor", "name", "value"]]
    """),
    code("""
    hung_up = mdn.events.query("name == 'connectionState' and value == 'closed'")["t_ms"].min()
    print(f"mdn: the call was closed at {hung_up / 1000:.1f} s; the path came back at 15.0 s;",
          "basic was connected again at", short.events.query("name == 'connectionState' and value == 'connected'")["t_ms"].max() / 1000, "s")
    """),
    md("""
    The first peer that notices the outage closes its connection, and the run ends there:
    the call is gone four seconds before the network came back, where `basic` (which
    simply ignores `disconnected`) was talking again. The sample also sends no `hang-up`
    message in that case, so the other user is not told either. In a browser this is the
    same: `disconnected` arrives ~6 s after the cut and the sample closes, although
    Chromium would have recovered (the `path-heals` trace above).

    What the sample should do instead: on `disconnected`, show "reconnecting…" and wait;
    act on `connectionState == "failed"` (next section).

    ## A long outage: `failed` is final, until `restartIce()`

    Now the path stays cut for 20 s (from 5 s to 25 s), longer than the ~16 s after which
    the browser says `failed`. With rtclab's `cut_for_s`, a run is not ended by `failed`:
    it holds the call until `hold_s` (here 40 s), so we can see whether it comes back.
    First the textbook call, which does nothing about it:
    """),
    code("""
    long = rtclab.run("basic", hold_s=40, cut_at_s=5, cut_for_s=20)
    long.events.query(STATES)[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    `failed` at ~21 s, the path back at 25 s, and then nothing for fifteen seconds: the
    connection stays `failed` (in rtclab its consent checks stopped when consent expired,
    as RFC 7675 asks). Chromium behaves the same way here. The conformance suite let a
    call reach `failed`, made the relay forward again and watched for 8 s
    (`path-back-after-failed`): no state changed until the scenario closed both peers.
    """),
    code("""
    chromium_failed = data.chromium_trace("RTCPeerConnection-iceConnectionState/path-back-after-failed")
    chromium_failed.query(STATES.replace("t_ms > 1000", "t_ms > 500"))[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    The way back is an **ICE restart**. `restartIce()` asks the browser to create new ICE
    credentials; it fires `negotiationneeded`, the page's usual handler sends a new offer,
    the other side answers (its browser sees the new credentials and restarts too), both
    gather new candidates, and ICE checks the new pairs. DTLS and the media keep going
    over whatever pair wins ([RFC 8445 §9](https://www.rfc-editor.org/rfc/rfc8445#section-9),
    W3C `restartIce()`).

    The `ice-restart` flow is `basic` plus two small changes. The caller calls
    `restartIce()` when `connectionState` becomes `failed` (it made the first offer, so
    its restart offer cannot collide with one from the callee). The callee answers a later
    offer on the connection it already has, instead of building a new one:
    """),
    code("""
    print(rtclab.flow_source("ice-restart", helpers=False))
    """),
    code("""
    restart = rtclab.run("ice-restart", hold_s=40, cut_at_s=5, cut_for_s=20)
    print(restart.outcome, "-", restart.reason)
    restart.events.query(STATES + " or name in ['restartIce', 'restart'] or (kind == 'signal' and value == 'sent' and t_ms > 1000)")[["t_ms", "actor", "kind", "name", "value"]]
    """),
    md("""
    Read it from the `failed` row:

    * the caller calls `restartIce()` at once, and its `negotiationneeded` handler sends a
      new `video-offer` through the signaling server (which still works);
    * the callee answers, both gather new candidates (`restart gathering`) and check new
      pairs (`restart checking`); the checks are retransmitted while the path is still
      cut;
    * after the path is back at 25 s, a check gets through, the restart completes, and
      both peers are `connected` again: the same call, same media tracks, no new
      `RTCPeerConnection`.

    How long the last step takes after the path is back follows aioice's retransmission
    timers, not a browser's. That a restart keeps a working call going, with new
    credentials and new candidates, is the conformance scenario `restartIce/call-survives`
    in Chromium:
    """),
    code("""
    chromium_restart = data.chromium_trace("RTCPeerConnection-restartIce/call-survives")
    chromium_restart.query("name in ['restartIce', 'negotiationneeded'] or name.str.startswith('observe') or (kind == 'state' and name != 'iceGatheringState' and t_ms > 20)", engine="python")[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    In Chromium too, `restartIce()` led to `negotiationneeded`, a new offer and answer
    with a new ufrag, new candidates, and the call went on; neither ICE state machine
    moved during the restart of this working call. (Chromium's restart of a
    `failed` call was not recorded here: the suite's relay forwards only the first
    candidate of each side, and a restart brings new ones.)

    The two plots side by side: `basic` stays `failed`, `ice-restart` comes back.
    """),
    code("""
    fig = plots.beside(long, restart, plot="states",
                       titles=("rtclab: basic, path cut 5 s to 25 s", "rtclab: ice-restart, same cut"))
    """),
    md("""
    ## The page's own timers

    The browser's timers (notebook 08) decide when the *states* change; what the user sees
    is the page's decision. A summary of what the runs above support:

    | situation | what the browser reports | what the page should do |
    | --- | --- | --- |
    | call started, no answer or no candidates | nothing at all (`new`, notebook 08 a) | a setup timer from the click on *Call*, cancelled at `connected` |
    | candidates that never work | `connectionState` `failed` ~15 s after `checking` | give up or retry; show why |
    | outage during the call | `disconnected` ~6 s after it starts | show "reconnecting…", keep the call; do not close |
    | outage longer than ~16 s | `connectionState` `failed` (`iceConnectionState` stays `disconnected`) | `restartIce()` on one side (the offerer), then a timer for the restart; hang up if it does not connect |
    | the other user hangs up | a `hang-up` message (the page's own protocol) | close at once |

    The restart needs the signaling channel: if that is down too, the page has to
    reconnect it first and then restart. A page may also restart earlier than the
    browser's `failed` (a grace timer started on `disconnected`), trading a few wasted
    restarts for a faster recovery.

    ## Summary

    * `disconnected` is transient: with the path back, Chromium and rtclab return to
      `connected` on the same pair with no help from the page.
    * The MDN sample closes the call on `disconnected` and so loses calls a browser would
      have kept.
    * `failed` stays `failed` when the path comes back; `restartIce()` plus one offer and
      answer brings the same call back. Watch `connectionState`, since
      `iceConnectionState` never reaches `failed` after a cut in Chromium.
    * The page owns the timers that matter to its users: setup, reconnecting, restart.

    **Try this**

    1. Find the edge between "heals by itself" and "needs a restart": run `basic` with
       `hold_s=40, cut_at_s=5` and `cut_for_s=15`, then `cut_for_s=17`. Which one comes
       back to `connected`, and why?
    2. Run `ice-restart` behind NATs (`topology="nat"`, same cut). Which candidates does the
       restart gather, and which pair is selected after it?
    3. Many examples restart ICE when `iceConnectionState` becomes `failed`. Write a caller
       that does that (start from `rtclab.flow_source("ice-restart")`), run it against the
       `ice-restart` callee with `rtclab.run(caller=..., callee=rtclab.flows.ice_restart_callee,
       hold_s=40, cut_at_s=5, cut_for_s=20)`. Does the call come back?
    4. Run `mdn` with a 4-second outage (`cut_for_s=4`). Does it survive this one, and why?
    """),
]
