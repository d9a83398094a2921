from build import code, md

CELLS = [
    md("""
    # 1 · Anatomy of a call

    **Overview.** One ordinary, working call, taken apart. You will follow it from the
    offer to the first video frame: the offer, the answer (which the article calls a
    "counter-offer"), the candidates trickled in both directions, the connectivity
    checks, the moment both peers say `connected`, and media. On the way you will
    meet the four state machines each peer runs, the event table that records
    everything, the timing plots, and the `ref` column that lets you follow a single
    candidate from one peer to the other.

    **Time.** About 25 minutes.

    **Prerequisites.** Notebook 00 (set-up check). Some idea of what an offer and an
    answer are helps; MDN's
    [Signaling and video calling](https://developer.mozilla.org/en-US/docs/Web/API/WebRTC_API/Signaling_and_video_calling)
    is the reference this course leans on, next to the article
    [*Why your WebRTC calls aren't working: timing is everything*](https://scottiestech.info/2021/09/14/why-your-webrtc-calls-arent-working-timing-is-everything/)
    (called "the article" below).
    """),
    code("""
    %matplotlib inline
    import rtclab
    from rtclab import data, plots
    """),
    md("""
    ## The call we take apart

    The `basic` flow is the textbook call: the caller adds its camera, makes an offer when
    the browser says negotiation is needed, the callee answers as soon as the offer
    arrives, and both sides forward their ICE candidates as they find them. Here is its
    app code, written the way a web page would do it:
    """),
    code("""
    print(rtclab.flow_source("basic"))
    """),
    md("""
    We run it once on the simulated network, with the defaults: both machines on one flat
    network, a signaling server that takes a few tens of milliseconds per message, and a
    fixed seed, so the call below is the same every time you run this notebook.
    """),
    code("""
    call = rtclab.run("basic", seed=1)
    call
    """),
    md("""
    ## One table for everything

    Every event of the call is one row of `call.events`, whichever side it happened on. All
    rows share one clock, `t_ms`, in milliseconds since the caller clicked *Call* (virtual
    milliseconds on the simulated network). The columns:
    """),
    code("""
    call.events.dtypes
    """),
    md("""
    `actor` says where it happened (`caller`, `callee`, the signaling `channel`, the
    `user`, the `network`), `kind` says what sort of event it is. Counting the kinds gives
    a first picture of the call: a handful of API calls and state changes on each side,
    a few signaling messages, some ICE events.
    """),
    code("""
    call.events["kind"].value_counts()
    """),
    md("""
    The table is a plain pandas frame, so any question is a filter away. Here are only the
    signaling messages: each message appears twice, once `sent` by one side and once
    `delivered` to the other, and the `ref` column ties the two rows together (`m1` is the
    offer, `m2` the answer; candidates carry their own refs, see below).
    """),
    code("""
    call.events.query("kind == 'signal'")[["t_ms", "actor", "name", "value", "ref"]]
    """),
    md("""
    ## Step by step: offer, answer, candidates, checks, connected, media

    `call.table()` is a compact view of the same frame without the low-level ICE rows. Its
    first rows are the caller's side of the story: the user clicks *Call*, the page
    creates its `RTCPeerConnection`, gets the camera, adds the track, the browser fires
    `negotiationneeded`, and the handler creates the offer and sends it.
    """),
    code("""
    call.table().query("actor in ['user', 'caller']").head(10)
    """),
    md("""
    On the callee's side the offer arrives, the page creates its own peer connection, sets
    the offer as its remote description, adds its camera, and creates the answer. The
    article calls this answer a *counter-offer*. In SDP offer/answer (RFC 3264) an answer
    ends the negotiation (a provisional one would be a `pranswer`), but the article's
    point stands: the answer means "my browser can take this call", not "the user picked
    up"; accepting the call is a message of the app's own (notebooks 05 and 13). Meanwhile candidates keep arriving from the
    caller and are added as they come.
    """),
    code("""
    call.table().query("actor == 'callee' and kind in ['call', 'signal']").head(12)
    """),
    md("""
    Once a peer has both descriptions and some remote candidates, its ICE agent starts
    **connectivity checks**: it pairs local and remote candidates and sends STUN requests
    on each pair. The `pair` rows show these checks. The side that made the offer is the
    *controlling* agent: it decides which working pair the call uses and *nominates* it,
    and the other side follows. (aioice, under rtclab's peers, nominates aggressively:
    its checks carry the nomination flag, so the first pair that succeeds wins. RFC 8445's
    regular nomination checks first and nominates afterwards, so an agent may wait for a
    better pair.) The chosen pair shows up as `selected-pair`, written as
    *local type / remote type* as that peer sees it.
    """),
    code("""
    call.events.query("kind == 'ice' and name in ['pair', 'selected-pair']")[["t_ms", "actor", "name", "value"]]
    """),
    md("""
    Then DTLS runs over the selected pair, both peers report `connected`, and media flows.
    The headline numbers of the call come straight from the table:
    """),
    code("""
    call.metrics[["outcome", "t_connected_ms", "t_first_frame_ms", "candidates_added", "selected_pair"]]
    """),
    md("""
    ## Four state machines per peer

    Each `RTCPeerConnection` exposes four states, and each has its own event
    (see MDN: [`signalingState`](https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/signalingState),
    [`iceGatheringState`](https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/iceGatheringState),
    [`iceConnectionState`](https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/iceConnectionState),
    [`connectionState`](https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/connectionState)):

    * **signaling**: where the offer/answer exchange is (`stable` ↔ `have-local-offer` /
      `have-remote-offer`);
    * **ICE gathering**: whether this peer is still looking for its own candidates;
    * **ICE connection**: whether the connectivity checks found a working pair;
    * **connection**: the overall verdict, ICE and DTLS together.

    Every change is a `state` row with the new `value` and the `prev`ious one. Reading them
    per peer gives each machine's path. Every machine starts at `new`, except signaling,
    which starts at `stable`; the final `closed` is the run hanging up at the end.
    """),
    code("""
    states = call.events.query("kind == 'state'")
    states.groupby(["actor", "name"], observed=True)["value"].agg(" → ".join)
    """),
    md("""
    Three things to notice:

    * The caller goes `stable → have-local-offer → stable` (it made the offer); the callee
      goes `stable → have-remote-offer → stable` (it received it).
    * Gathering goes `gathering → complete` on each side, and each side starts gathering
      only once it has set its local description.
    * `iceConnectionState` goes `new → checking → connected`: it leaves `new` only once a
      remote candidate is there to check, and says `connected` as soon as one pair works.
      That is what Chromium 156 reports for the same steps. aiortc on its own would say
      `completed` instead (and never `connected`); rtclab's peer reports the browser's
      states, and the README's table *rtclab vs a browser*, generated by running the
      same scenarios in Chromium, lists every such emulation. `connectionState` is the
      one to watch: it combines ICE and DTLS and says whether the call works.

    Here is what Chromium 156 recorded when it played the caller's page of this same
    `basic` flow against an rtclab callee (a stored trace, so no browser is needed to run
    this notebook): the caller's state machines go the same way.
    """),
    code("""
    chromium = data.chromium_trace("basic-browser-caller")
    chromium.query("actor == 'caller' and kind == 'state'").groupby("name", observed=True)["value"].agg(" → ".join)
    """),
    md("""
    ## The picture

    `call.plot()` draws the same frame as two panels on one time axis: the **sequence
    diagram** (`plots.sequence`: caller on top, callee at the bottom, each signaling
    message an arrow from the moment it was sent to the moment it was delivered) above the
    **state bands** (`plots.states`: the four machines of each peer, coloured by state).
    """),
    code("""
    fig = call.plot()
    """),
    md("""
    Read it from left to right: the offer crosses first, candidates follow it closely (they
    are sent the moment they are found, before any answer), the answer crosses back, and
    the state bands turn green once the checks succeed. The callee's `have-remote-offer`
    band is missing because it lasts no time at all: this callee answers within the same
    virtual millisecond (the text sequence above still lists it). Each function also works
    on its own, for example `plots.states(call)` for the bands alone.

    ## Following one candidate

    A candidate has a `ref` such as `caller:c1` (the caller's first candidate) that stays
    the same across actors. Filtering on it shows its whole life: **gathered** by the
    caller's ICE agent, **sent** by the caller's app, **delivered** by the signaling
    channel to the callee, passed to `addIceCandidate`, and **added** to the callee's ICE
    agent.
    """),
    code("""
    call.events.query("ref == 'caller:c1'")[["t_ms", "actor", "kind", "name", "value"]]
    """),
    md("""
    `plots.candidates` draws that life for every candidate at once, one row each, with the
    moments each peer connection was created (dashed) and got its remote description
    (dotted). In this call every candidate ends green (added); notebook 03 shows a call
    where they do not.
    """),
    code("""
    ax = plots.candidates(call)
    """),
    md("""
    The candidate counts, gathered → sent → delivered → added, agree: nothing was lost on
    the way.
    """),
    code("""
    call.metrics[["candidates_gathered", "candidates_sent", "candidates_delivered", "candidates_added", "candidates_lost"]]
    """),
    md("""
    ## Summary

    * A call is offer → answer (the article's "counter-offer") → candidates
      trickled both ways → connectivity checks → a selected pair → `connected` → media.
    * Each peer runs four state machines; `connectionState` is the one that says whether the
      call works; rtclab reports the browser's states (checked against Chromium 156).
    * Everything is in one frame on one clock: filter on `kind`, `actor`, `name`, and follow
      a message or a candidate with `ref`.

    **Try this**

    1. Run the same call with `signaling_latency_ms=200`. Which state band gets longer, and
       does `t_connected_ms` grow by about the extra latency, or by more?
    2. List every row of the caller's end-of-candidates (`ref == 'caller:end'`). How does it
       differ from a real candidate's life?
    3. Count the API calls (`kind == 'call'`) per actor. Which side makes more, and why?
    """),
]
