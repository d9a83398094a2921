from build import code, md

#: each notebook's section starts folded (notebooks/build.py): no answer in sight before you open it
COLLAPSED_SECTIONS = True

CELLS = [
    md("""
    # 10 · Solutions to the exercises

    **Overview.** Notebooks 01 to 08 and 11 to 14 end with a few "Try this" exercises, and
    notebooks 02 to 08 also with a fix-the-code exercise. This notebook answers the
    "Try this" exercises one section per notebook, then fixes each broken app (last
    section, "Fix-the-code exercises"), with its check passing. For "Try this", each
    exercise is restated in bold, a short cell computes the answer with rtclab, and a few
    lines explain what the output shows. **Try the exercises yourself first**: the point
    is to read the event table and the plots, and to make the code work, on your own;
    come here to check, or when you are stuck. Each section
    starts folded so that no answer is in sight: click the ▸ beside a heading (or the
    heading's left margin) to open it.

    The explanations refer to the printed outputs rather than repeating their numbers,
    so they stay true if rtclab's emulation is tuned. All runs are on the simulated
    network (a model with a virtual clock), so your own runs with the same parameters
    give the same results.

    **Time.** As long as you like: read a section after its notebook's exercises.

    **Prerequisites.** The notebook each section answers (01–08, 11–14). Notebook 09's exercises are answered by pointers at the end.
    """),
    code("""
    %matplotlib inline
    import asyncio
    import inspect

    import pandas as pd
    from aioice import ice, stun

    import rtclab
    from rtclab import data, plots
    """),
    # ------------------------------------------------------------------ 01
    md("""
    ## 01 · Anatomy of a call

    **Exercise 1.1.** Run the call with `signaling_latency_ms=200`. Which state band gets
    longer, and does `t_connected_ms` grow by about the extra latency, or by more?
    """),
    code("""
    slow = {ms: rtclab.run("basic", seed=1, signaling_latency_ms=ms) for ms in (20, 200)}
    delay = slow[200].metrics["t_connected_ms"] - slow[20].metrics["t_connected_ms"]
    print(delay, "ms later; two extra one-way trips would be", 2 * (200 - 20), "ms")
    """),
    md("""
    `t_connected_ms` grows by much more than the extra latency, close to twice it: the offer
    and the answer each cross the slower channel once before the caller can finish. The state
    rows of the slow call show which bands stretch: the caller stays in `have-local-offer`
    until the answer comes back, and the callee only starts `checking` once the offer has
    arrived.
    """),
    code("""
    rows = "kind == 'state' and name in ['signalingState', 'iceConnectionState'] and value != 'closed'"
    print(slow[200].events.query(rows)[["t_ms", "actor", "name", "value"]].to_string(index=False))
    """),
    md("""
    Compare the printed delay with the two trips: if it is a little shorter, look at the
    callee's `checking` row above. The callee starts its connectivity checks as soon as it
    has the offer and the caller's candidates, while its answer is still on the way back,
    so part of the ICE work overlaps the answer's trip.

    **Exercise 1.2.** List every row of the caller's end-of-candidates (`ref == 'caller:end'`:
    a ref names the side that sent it). How does it differ from a real candidate's life?
    """),
    code("""
    call = rtclab.run("basic", seed=1)
    call.events.query("ref in ['caller:c1', 'caller:end']")[["t_ms", "actor", "kind", "name", "value", "detail"]]
    """),
    md("""
    Both go through the same steps: the caller's ICE agent reports it, the app sends it, the
    channel delivers it, the callee passes it to `addIceCandidate` and its agent takes it.
    The differences: the end-of-candidates row has `value == "end"` instead of `gathered`,
    it carries no candidate line (its `detail` is empty or just says `end-of-candidates`),
    and it is not counted as a candidate. The metrics count only the real ones:
    """),
    code("""
    n_refs = call.events.query("kind == 'ice' and name == 'candidate' and not ref.str.endswith(':end')")["ref"].nunique()
    print("candidate refs:", n_refs, "| candidates_gathered:", call.metrics["candidates_gathered"])
    """),
    md("""
    **Exercise 1.3.** Count the API calls (`kind == 'call'`) per actor. Which side makes more,
    and why?
    """),
    code("""
    calls = call.events.query("kind == 'call'")
    calls.groupby("actor", observed=True)["name"].value_counts().unstack(0, fill_value=0)
    """),
    code("""
    calls.groupby("actor", observed=True).size()
    """),
    md("""
    The caller has one row more. Most rows pair up (`createOffer` on one side,
    `createAnswer` on the other); the extra one is `negotiationneeded`, the event whose
    handler makes the offer. It is recorded as a `call` row, and only the caller gets it:
    the callee adds its track while answering an offer that already has a video section
    (exercise 2.3).
    """),
    # ------------------------------------------------------------------ 02
    md("""
    ## 02 · Offer after your tracks

    **Exercise 2.1.** Run `offer-before-tracks` with `topology="nat"`. Does the network make
    any difference to a call that negotiates nothing?
    """),
    code("""
    {t: rtclab.run("offer-before-tracks", seed=1, topology=t).metrics[["outcome", "reason"]].tolist()
     for t in ["lan", "nat"]}
    """),
    md("""
    No: the same outcome and reason on both topologies. With no media section there is no
    transport, so no packet ever needs to cross a NAT; the call fails before the network
    plays any part.

    **Exercise 2.2.** In the `offer-before-tracks` run, look for `iceGatheringState` rows and
    count the gathered candidates. What do you find, and does Chromium's trace agree?
    """),
    code("""
    early = rtclab.run("offer-before-tracks", seed=1)
    chromium = data.chromium_trace("RTCPeerConnection-onnegotiationneeded/addTrack-after-empty-offer")
    for label, frame in [("rtclab", early.events), ("Chromium 156", chromium)]:
        gathering = frame.query("kind == 'state' and name == 'iceGatheringState'")
        gathered = frame.query("kind == 'ice' and name == 'candidate' and value == 'gathered'")
        print(f"{label}: {len(gathering)} iceGatheringState rows, {len(gathered)} candidates gathered")
    """),
    md("""
    Nothing on either side, in rtclab and in Chromium: no `iceGatheringState` row (both
    peers stay `new`) and no candidate. An offer and an answer without a media section
    need no transport, so there is nothing to gather for; the W3C states only move to
    `gathering` when a transport starts gathering.

    **Exercise 2.3.** In the `basic` run, the callee calls `addTrack` too. Why does that not
    fire `negotiationneeded` on the callee?
    """),
    code("""
    rows = "actor == 'callee' and (name in ['addTrack', 'negotiationneeded', 'setRemoteDescription'] or (kind == 'state' and name == 'signalingState'))"
    call.events.query(rows)[["t_ms", "name", "value", "detail"]]
    """),
    md("""
    The callee calls `addTrack` while it is in `have-remote-offer`, after applying an offer
    whose `detail` already lists a video section (`m=[...]`). The track is attached to that
    video transceiver and goes out in the answer, so once the callee is back in `stable`
    nothing is left to negotiate, and no `negotiationneeded` row appears. Compare with
    `offer-before-tracks` in notebook 02, where the offer had no section to attach the
    track to.
    """),
    # ------------------------------------------------------------------ 03
    md("""
    ## 03 · The timing trap

    **Exercise 3.1.** Re-run `answer-on-click` with `answer_delay_ms=0`. Are candidates still
    lost?
    """),
    code("""
    click0 = rtclab.run("answer-on-click", answer_delay_ms=0)
    ax = plots.candidates(click0)
    """),
    code("""
    rows = "actor == 'callee' and (name in ['video-offer', 'RTCPeerConnection', 'setRemoteDescription'] or ref.str.startswith('caller:'))"
    print(click0.events.query(rows)[["t_ms", "kind", "name", "value", "ref"]].to_string(index=False))
    click0.metrics[["outcome", "candidates_lost", "candidates_added"]]
    """),
    md("""
    No candidate is lost: every row of the plot ends green (added). With no think time the callee creates its peer connection at the
    same virtual moment the offer is delivered, and the caller's candidates, which left after
    the offer, are delivered later (see the `t_ms` of the `delivered` rows). The bug is still
    in the code: it only stays hidden because the user answers faster than the first
    candidate can arrive.

    **Exercise 3.2.** Sweep `mdn` with `reorder=0` but the same latency and jitter. How many
    errors are left?
    """),
    code("""
    in_order = rtclab.sweep("mdn", trials=10, seed=0, progress=False, workers=1, deadline_s=10,
                            signaling_latency_ms=50, jitter_ms=40, reorder=0)
    in_order["outcome"].value_counts().to_dict(), int(in_order["errors"].sum())
    """),
    md("""
    (`deadline_s=10`: a call whose camera never arrives only ends at its deadline, 90
    virtual seconds by default, with the other camera's video encoded all along; ten
    seconds are plenty to see every outcome of this sweep.)

    Fewer, and of another kind. With each direction kept in order, no candidate overtakes the
    offer or the answer it follows any more: the `TypeError`s and the `addIceCandidate`
    errors of notebook 03 are gone. But two calls end `no-media`, and their errors come from
    the sample's second negotiation. Jitter can shrink the gap between two messages to
    nothing: the callee's answer and its own re-offer (the sample always renegotiates from
    the callee) reach the caller at the same moment. The re-offer's handler runs while
    `setRemoteDescription(answer)` is still pending, still sees `have-local-offer`, takes the
    sample's glare branch, and its rollback then runs in `stable` and fails with
    `InvalidStateError`. The re-offer is applied but never answered, so the callee's camera
    never reaches the caller. Keeping order is not enough: the sample also assumes that one
    message is fully handled before the next one starts, which neither a browser nor rtclab
    promises.

    **Exercise 3.3.** Replay the call that did not connect and find its last
    `iceConnectionState` on each side.
    """),
    code("""
    async_signaling = dict(signaling_latency_ms=50, jitter_ms=40, reorder=0.5)
    shuffled = rtclab.sweep("mdn", trials=10, seed=0, progress=False, workers=1, **async_signaling)
    bad_seed = int(shuffled.query("outcome != 'connected'")["seed"].iloc[0])
    """),
    code("""
    bad = rtclab.run("mdn", seed=bad_seed, **async_signaling)
    print(bad.metrics[["outcome", "reason", "candidates_added", "candidates_lost", "candidates_rejected"]].to_string())
    bad.events.query("kind == 'state' and name == 'iceConnectionState'")[["t_ms", "actor", "value"]]
    """),
    md("""
    Neither ICE agent ever leaves `new`: the only rows are the `closed` ones at the run's
    deadline (the run hanging up, not ICE deciding anything). A browser's ICE agent leaves
    `new` only when it has a remote candidate to check *and* the descriptions in place; here
    the caller never applied the callee's answer (its re-offer overtook it and the sample's
    glare branch rolled back, see notebook 03), and the callee never got one of the caller's
    candidates. Nothing starts, so nothing fails either: the call waits until the app (here
    the run's deadline) gives up, as notebook 08 explains.
    """),
    # ------------------------------------------------------------------ 04
    md("""
    ## 04 · Works on my machine

    **Exercise 4.1.** Mix NAT types: `nat=("full-cone", "symmetric")`. Does STUN alone get
    through when only one side is symmetric?
    """),
    code("""
    mixed = rtclab.run("basic", topology="nat", nat=("full-cone", "symmetric"))
    mixed.metrics[["outcome", "reason", "selected_pair_caller", "selected_pair_callee"]]
    """),
    md("""
    Yes, without TURN. The pairs read `local/remote` as each side sees them. The caller sits
    behind the full-cone NAT: its server-reflexive address accepts packets from anyone, so the
    symmetric callee's checks reach it, from a port the STUN server never saw; that is why the
    caller knows the callee by a peer-reflexive (`prflx`) address. The callee reaches the
    caller through the caller's `srflx` candidate.

    That does not make "one open side" enough in general. RFC 4787 describes a NAT by two
    separate behaviours: how it *maps* (the same public port for every destination, or a new
    one per destination: the "symmetric" case) and how it *filters* incoming packets (from
    anyone, only from addresses it has sent to, or only from those exact address and port
    pairs). The old names mix the two. What decides the case above is the other side's
    filtering: the symmetric side's checks come from a new port, so they pass a NAT that
    filters by address only, but not one that filters by address *and port*:
    
    """),
    code("""
    pairs = [("full-cone", "symmetric"), ("restricted", "symmetric"), ("port-restricted", "symmetric")]
    for nat in pairs:
        for turn in (False, True):
            r = rtclab.run("basic", topology="nat", nat=nat, turn=turn)
            print(f"{nat[0]:>15} + symmetric, turn={turn!s:5}: {r.outcome:9} {r.metrics['selected_pair_caller'] or '-'}")
    """),
    md("""
    Behind a port-restricted NAT facing a symmetric one, STUN is not enough and only the
    relay gets through.

    **Exercise 4.2.** Run `answer-on-click` with `topology="nat", nat="full-cone"`. Does the
    peer-reflexive rescue come back?
    """),
    code("""
    cone = rtclab.run("answer-on-click", topology="nat", nat="full-cone")
    cone.metrics[["outcome", "candidates_lost", "selected_pair_caller", "selected_pair_callee"]]
    """),
    md("""
    It does: the call connects although the caller's candidates were still lost. The caller
    learns the callee's candidates and checks the callee's `srflx` address; a full-cone NAT
    lets those checks in (the mapping exists since the callee asked the STUN server), and the
    callee learns the caller's address from them as a `prflx` candidate, as on the LAN in
    notebook 04. The port-restricted default refuses the same checks, which is the whole
    difference.

    **Exercise 4.3.** In the failed `answer-on-click` run, count the caller's checks that
    reached the NAT (`filtered` rows) and compare their spacing with the ICE retransmission
    rules.
    """),
    code("""
    nat = rtclab.run("answer-on-click", topology="nat", record_packets=True)
    filtered = nat.events.query("kind == 'net' and value == 'filtered'")
    filtered.assign(gap_ms=filtered["t_ms"].diff())[["t_ms", "gap_ms", "detail"]]
    """),
    md("""
    One check, retransmitted: the gap doubles each time, the STUN scheme of
    [RFC 8489 §6.2.1](https://www.rfc-editor.org/rfc/rfc8489#section-6.2.1) (which
    obsoletes RFC 5389 and keeps its timers) that
    [RFC 8445 §14.3](https://www.rfc-editor.org/rfc/rfc8445#section-14.3) applies to
    connectivity checks, with a first timeout (RTO) of at least 500 ms. aioice's constants,
    the first timeout in seconds and the number of retransmissions after the first send:
    """),
    code("""
    stun.RETRY_RTO, stun.RETRY_MAX
    """),
    md("""
    Each gap doubles, and the first one is the first timeout. Only the sends of the first
    15 s appear: the call fails 15 s after its checks began (Chromium 156's timer, which
    rtclab emulates; notebook 08 b), before aioice's schedule (failure at 63.5 s) or
    RFC 8489's (39.5 s) would have ended.
    """),
    # ------------------------------------------------------------------ 05
    md("""
    ## 05 · Offer, counter-offer, answer

    **Exercise 5.1.** Run `counteroffer` behind symmetric NATs. Does it still connect? What does
    `turn=True` change? (Compare with notebook 04.)
    """),
    code("""
    sym = {f"{flow}, turn={turn}": rtclab.run(flow, topology="nat", nat="symmetric", turn=turn)
           for flow, turn in [("basic", False), ("counteroffer", False), ("counteroffer", True)]}
    pd.DataFrame({k: r.metrics[["outcome", "reason", "selected_pair_caller", "selected_pair_callee"]] for k, r in sym.items()})
    """),
    md("""
    The counter-offer fixes *when* candidates are taken, not *where* packets can go: behind
    two symmetric NATs no pair of host or server-reflexive candidates works, as for `basic`
    in notebook 04. Both end the same way: `failed`, 15 seconds after checking began,
    whether or not end-of-candidates was sent (a browser does not fail earlier: RFC 8863;
    Chromium 156 takes 15 s, notebook 08). With `turn=True` both sides get relay candidates
    and the call connects `relay/relay`.

    **Exercise 5.2.** Raise the think time to 10 s. Does `answer_to_media_ms` change? Why not?
    """),
    code("""
    pd.DataFrame({d: rtclab.run("counteroffer", answer_delay_ms=d).metrics[
        ["t_connected_ms", "t_answer_click_ms", "answer_to_media_ms"]] for d in (1000, 10_000)})
    """),
    md("""
    The click moves, `answer_to_media_ms` does not. The connection was complete long before
    the first click (compare `t_connected_ms` with `t_answer_click_ms`), so after the click
    only the two `replaceTrack` gates (the callee's at once, the caller's when
    `call-accepted` arrives) and the media path remain, however long the phone rang.

    **Exercise 5.3.** Sweep `link_latency_ms` instead of `signaling_latency_ms` for both flows.
    Which part of `answer_to_media_ms` does the media path account for?
    """),
    code("""
    media = rtclab.sweep(["counteroffer", "answer-on-click"], trials=1, grid={"link_latency_ms": [5, 50, 200]},
                         progress=False, workers=1)
    media[["flow", "link_latency_ms", "t_connected_ms", "t_answer_click_ms", "answer_to_media_caller_ms",
           "answer_to_media_callee_ms"]].round()
    """),
    md("""
    For `counteroffer` the media path is nearly all there is, as long as the call is
    connected before the click. The caller waits for the first frame of the callee's camera
    to cross the link; the callee waits one signaling trip longer, for `call-accepted` to
    open the caller's gate, then for the caller's first frame. The caller's wait is
    one one-way trip of the media path plus up to two frame intervals (33 ms each): one for
    the camera's next frame, and one because aiortc's receiver passes a frame on only when a
    packet of the following frame arrives (run with `record_packets=True` and compare the
    `net` rows with the `first-frame` row to see it). So it grows with the link latency. For
    `answer-on-click`
    the same media path comes on top of the whole connection set-up (ICE checks and DTLS
    handshake, all on the same slow link), which starts only after the click, so it grows
    faster.

    Look at the largest latency: there the counter-offer call is **not** connected when the
    user clicks (its `t_connected_ms` is later than `t_answer_click_ms`), so answering waits
    for the rest of the set-up too, on both sides. The counter-offer's head start is the
    think time; it hides the set-up only when the set-up is shorter.

    **Exercise 5.4.** Run the reordering sweep with `"basic"` instead of `"counteroffer"` and
    read the `reason` column of the failures.
    """),
    code("""
    rough = rtclab.sweep("basic", trials=10, signaling_latency_ms=50, jitter_ms=40, reorder=0.5,
                         progress=False, workers=1)
    rough.groupby(["outcome", "reason"]).size()
    """),
    md("""
    Without a queue, `basic` loses calls to reordering: a candidate that reaches the callee
    before the offer finds no peer connection (`pc` is still `None`: the `TypeError` in the
    app's message handler), as in notebook 03. A candidate that arrives after an
    end-of-candidates that overtook it is no error: RFC 8838 says to ignore it, and Chromium
    156 even uses it, as rtclab does (its rows say `late`). The counter-offer's queue removes
    the remaining problem.
    """),
    # ------------------------------------------------------------------ 06
    md("""
    ## 06 · Trickle vs vanilla ICE

    **Exercise 6.1.** Make gathering slower with `link_latency_ms=200`. How do `gathering_ms`
    and `t_connected_ms` of the two flows move?
    """),
    code("""
    far = rtclab.sweep(["basic", "vanilla"], trials=1, grid={"link_latency_ms": [5, 200]}, topology="nat",
                       progress=False, workers=1)
    far[["flow", "link_latency_ms", "outcome", "gathering_ms", "t_connected_ms"]].round()
    """),
    md("""
    Gathering is the same for both flows (same network, same STUN round trip) and grows with
    the link latency. `t_connected_ms` grows for both; at the default latency the two flows
    connect together, while at 200 ms vanilla is clearly behind: it waits for the now slow
    gathering before sending each description, while the trickle call overlaps gathering
    with signaling and checks. Remember the README's note on when
    `setLocalDescription` resolves: the size of the gap depends on that emulation.

    **Exercise 6.2.** Turn the STUN server off on the LAN. What does gathering consist of then,
    and does vanilla still wait?
    """),
    code("""
    nostun = rtclab.sweep(["basic", "vanilla"], trials=1, grid={"stun": [True, False]}, progress=False, workers=1)
    nostun[["flow", "stun", "candidates_gathered", "gathering_ms", "t_connected_ms"]].round()
    """),
    md("""
    Without STUN each side gathers only its host candidate, which needs no network round
    trip, so gathering becomes very short. Vanilla still waits for it, but there is almost
    nothing to wait for: the two flows end up close, with vanilla a little behind (see the
    `t_connected_ms` rows with `stun=False`).

    **Exercise 6.3.** Behind symmetric NATs with `turn=True`, compare the two flows.
    """),
    code("""
    relay = rtclab.sweep(["basic", "vanilla"], trials=1, topology="nat", nat="symmetric", turn=True,
                         progress=False, workers=1)
    relay[["flow", "outcome", "selected_pair_caller", "selected_pair_callee", "gathering_ms", "t_connected_ms"]].round()
    """),
    md("""
    Both connect through TURN, and their set-up times are close (last column). The winning
    pairs differ: `basic` uses a relay on both sides, while in `vanilla` the caller reaches
    the callee's relay address straight from its host candidate, and the callee sees it as
    peer-reflexive; one relay on the path is enough. In rtclab's model, the TURN allocation is one short exchange with a server in
    the simulation, so vanilla's wait for gathering costs little, and here trickle ICE does
    not come out ahead. The simulation is a model: a distant TURN server, or a browser that
    trickles each relay candidate the moment it is allocated, could change this.

    **Exercise 6.4.** Add `loss=0.2` (signaling messages dropped). Which style suffers, and why?
    """),
    code("""
    lossy = rtclab.sweep(["basic", "vanilla"], trials=10, loss=0.2, progress=False, workers=1)
    print(lossy.groupby(["flow", "outcome", "reason"]).size().to_string())
    lossy.groupby("flow")[["messages_sent", "messages_dropped"]].sum()
    """),
    md("""
    Both suffer, each in its own way; compare the counts in the table. Vanilla sends far fewer
    messages, so far fewer are dropped, but every drop is fatal: with one of its two
    descriptions gone the call has no way to recover and waits until the deadline
    (`timeout`). Trickle ICE loses many more messages; a lost candidate is often harmless
    (another one works), but a lost offer or answer turns the candidates that follow it into
    errors (`failed`): a `TypeError` when the offer was lost and the callee has no peer
    connection, an `InvalidStateError` when the answer was lost and the caller has no remote
    description (the two errors of notebook 03). With ten seeds per flow the success counts are close; do not read
    more into their difference than that. Neither flow retransmits: on a lossy channel, reliability is
    the signaling layer's job (a WebSocket over TCP provides it).
    """),
    # ------------------------------------------------------------------ 07
    md("""
    ## 07 · Glare and perfect negotiation

    **Exercise 7.1.** Run `glare` with `signaling_latency_ms=500`. Does the race still happen?
    """),
    code("""
    slow_glare = rtclab.run("glare", signaling_latency_ms=500)
    print(slow_glare.outcome, "-", slow_glare.reason)
    errs = slow_glare.events.query("kind == 'error' and name != 'onmessage'")[["t_ms", "actor", "name", "value"]]
    print(errs.sort_values(["t_ms", "actor", "name"]).to_string(index=False))
    """),
    md("""
    Yes, with the same two `InvalidStateError`s, only later (see their times: the answers
    now need two slow trips to come back). Both offers are made at time 0, before either
    could arrive, so they cross whatever the latency. Glare needs both sides to offer before
    the other's offer arrives, and a slower channel only keeps that window open longer.

    With a slow channel, each side's first connection also finished gathering long before
    the other's offer arrived, so its end-of-candidates went out; the candidates of the
    connection that replaced it (port 50001) arrive after that marker. They are no error:
    they are used, as Chromium 156 does (the `late` rows), although RFC 8838 would have them
    ignored.

    **Exercise 7.2.** In `perfect`, which side's video arrives first, and why?
    """),
    code("""
    perfect = rtclab.run("perfect")
    print(perfect.metrics[["t_first_frame_caller_ms", "t_first_frame_callee_ms"]].to_string())
    perfect.events.query("(kind == 'state' and name == 'connectionState' and value == 'connected') or name == 'first-frame'")[["t_ms", "actor", "name"]]
    """),
    md("""
    Each metric is the time a side *received* its first remote frame; the `first-frame` rows
    are recorded by the receiver. The callee receives first, so the **caller's** video arrives
    first. The connected rows show why: the caller's connection is up one link trip before the
    callee's, and each side's video starts flowing once its own connection is up; the
    frames then take the same time to cross.

    **Exercise 7.3.** Run `perfect` behind NATs. Does the rollback change which candidates the
    caller finally uses?
    """),
    code("""
    pd.DataFrame({flow: rtclab.run(flow, topology="nat").metrics[["outcome", "selected_pair_caller", "selected_pair_callee"]]
                  for flow in ["basic", "perfect"]})
    """),
    md("""
    No: `perfect` connects behind NATs with the same pairs as `basic`, each side using its
    own host candidate and the other side's server-reflexive address. The rolled-back offer
    leaves no trace in the final pair: the polite peer's first connection was dropped, and
    the candidates that count are those of the connection that survived.

    **Exercise 7.4.** On paper: where would the candidate queue of notebook 05 go in
    `perfect_app`? Here is the queue again:
    """),
    code("""
    print(inspect.getsource(rtclab.flows.CandidateQueue))
    """),
    md("""
    Create one `queue = CandidateQueue()` next to `pc`. Then, in `on_message`:

    * in the `new-ice-candidate` branch, call `await queue.add(msg["candidate"])` instead of
      `pc.addIceCandidate(...)`, keeping the `try/except` that swallows errors only while an
      offer is ignored;
    * in the description branch, right after `await pc.setRemoteDescription(description)`,
      call `await queue.flush(pc)`, so that candidates which overtook the offer or the answer
      are added as soon as there is a remote description.

    The queue then covers the reordering failures of notebook 07's last sweep, and perfect
    negotiation still covers glare. (One detail to think about: candidates of an offer the
    impolite peer ignored wait in the queue too; flushing them later raises the errors that
    the `try/except` already expects.)
    """),
    # ------------------------------------------------------------------ 08
    md("""
    ## 08 · Timeouts

    **Exercise 8.1.** Give `forgot-candidates` a shorter deadline (`deadline_s=5`). What
    changes in the outcome and the reason?
    """),
    code("""
    short = rtclab.run("forgot-candidates", deadline_s=5)
    print(short.outcome, "-", short.reason, "- ended at", short.metrics["duration_ms"], "ms")
    """),
    md("""
    Only the end time changes: the outcome is still `timeout`, with ICE `new` on both sides
    (no remote candidate, so nothing to check), ended by the deadline. Nothing in WebRTC
    would ever end this call, in rtclab or in Chromium (notebook 08, section a): the
    page's own timer decides when, so the deadline is a product decision, and it has to
    start with the call, not with `checking`.

    **Exercise 8.2.** In (b), keep `link_loss=1.0` but turn STUN back on. When does
    `checking` start now, and is the time from `checking` to `failed` still ~15 s?
    """),
    code("""
    for stun_on in (False, True):
        ev = rtclab.run("basic", link_loss=1.0, stun=stun_on).events
        checking = ev.query("name == 'iceConnectionState' and value == 'checking'")["t_ms"].min()
        failed = ev.query("name == 'connectionState' and value == 'failed'")["t_ms"].min()
        print(f"stun={stun_on!s:5}  checking at {checking / 1000:5.2f} s, failed {(failed - checking) / 1000:.1f} s later")
    """),
    md("""
    The wait from `checking` to `failed` is the same 15 s: it is the browser's timer, and
    it does not care why the checks go unanswered. What moves is the start. With STUN on,
    the requests to the STUN server are lost too, and aiortc holds its connectivity checks
    until its own gathering has finished, which here means until its fixed 5-second STUN
    timeout. That part is an aiortc limitation, not browser behaviour: a browser trickles host
    candidates as it finds them (Chromium 156 fires `icecandidate` before gathering
    completes), so its `checking` need not wait for STUN (not timed in Chromium here).

    **Exercise 8.3.** In (b), try `link_loss=0.5`. Does the call connect, and how much later
    than with no loss?
    """),
    code("""
    pd.DataFrame({loss: rtclab.run("basic", link_loss=loss).metrics[["outcome", "t_connected_ms", "t_first_frame_ms"]]
                  for loss in (0.0, 0.5)})
    """),
    md("""
    It connects, but far later: each lost STUN request, connectivity check or DTLS message
    waits for its retransmission timer (which doubles, exercise 4.3) before trying again.
    The delays are those of aioice's and aiortc's retransmission timers, not a browser's,
    and this is one seed's loss pattern; other seeds lose other packets and connect at
    other times.

    **Exercise 8.4.** In (c), cut the path earlier (`cut_at_s=1`) or later (`cut_at_s=20`,
    with `hold_s=60`): are `disconnected` and `failed` always the same time after the cut?
    """),
    code("""
    for cut_at in (1, 20):
        ev = rtclab.run("basic", hold_s=60, cut_at_s=cut_at).events
        disconnected = ev.query("name == 'connectionState' and value == 'disconnected'")["t_ms"].min()
        failed = ev.query("name == 'connectionState' and value == 'failed'")["t_ms"].min()
        print(f"cut at {cut_at:2d} s: disconnected {disconnected / 1000 - cut_at:.1f} s, failed {failed / 1000 - cut_at:.1f} s after the cut")
    """),
    md("""
    Yes: the timers run from the last answered check, not from the start of the call, so
    the same ~6 s and ~16 s follow every cut (Chromium's stored `path-cut` trace shows the
    same pair of figures, notebook 08). RFC 7675's 30-second consent expiry plays no
    visible part: the page sees the browser's states.

    **Exercise 8.5.** In (c), let the path come back after 4 s (`cut_for_s=4`), then after
    10 s. Which call goes `disconnected`, and does either come back to `connected`?
    """),
    code("""
    states = "kind == 'net' or (kind == 'state' and name == 'connectionState' and t_ms > 1000 and value != 'closed')"
    for cut_for in (4, 10):
        ev = rtclab.run("basic", hold_s=30, cut_at_s=5, cut_for_s=cut_for).events
        print(f"cut_for_s={cut_for}:", [f"{r.actor} {r.value} at {r.t_ms / 1000:.1f} s" for r in ev.query(states).itertuples()])
    """),
    md("""
    A 4-second outage ends before the ~6-second `disconnected` timer: no state changes at
    all, the call just loses a few seconds of media. A 10-second one shows `disconnected`
    on both sides and then `connected` again as soon as consent checks are answered, with
    no help from the page. Chromium does the same (the stored `path-heals` trace in
    notebook 12, which builds on this).

    ## 09 · Playground

    The playground's exercises are explorations in the call panel; each one repeats a
    measurement answered above:

    1. `answer-on-click` behind NATs: the lost candidates and the failure are exercise 4.3
       and notebook 04; `counteroffer` connecting there is notebook 05.
    2. Answering speed against signaling latency: notebook 05's sweep, and exercise 5.2 for
       why `counteroffer` does not depend on it.
    3. Which peer rolls back in `perfect`: the polite one, the callee (notebook 07). The
       playground's table shows the same `rollback` row as the run of exercise 7.2 (below).
    4. `forgot-candidates` comes back only at the deadline: exercise 8.1 and notebook 08 (a).
    5. Real network: timings vary from call to call because real sockets, the scheduler and
       the machine's load are not a virtual clock (notebook 00's exercise).
    """),
    code("""
    perfect.events.query("name == 'rollback'")[["t_ms", "actor", "kind", "name", "value"]]
    """),
    # ------------------------------------------------------------------ 12
    md("""
    ## 12 · When calls break

    **Exercise 12.1.** Run `basic` with `hold_s=40, cut_at_s=5` and `cut_for_s=15`, then
    `cut_for_s=17`. Which one comes back to `connected`, and why?
    """),
    code("""
    states = "kind == 'net' or (kind == 'state' and name == 'connectionState' and t_ms > 1000 and value != 'closed')"
    for cut_for in (15, 17):
        ev = rtclab.run("basic", hold_s=40, cut_at_s=5, cut_for_s=cut_for).events
        print(f"cut_for_s={cut_for}:", [f"{r.actor} {r.value} at {r.t_ms / 1000:.1f} s" for r in ev.query(states).itertuples()])
    """),
    md("""
    With 15 s the path is back at 20 s, just before the ~16-second `failed` timer runs out
    (at about 21 s): the next consent check is answered and the call is `connected` again.
    With 17 s the path comes back at 22 s, a moment after both sides said `failed`, and
    nothing changes after that: once consent has expired the checks stop, and only an ICE
    restart brings the call back. Chromium stayed `failed` too, for the 8 s it was watched
    after the path returned (the `path-back-after-failed` trace in notebook 12).

    **Exercise 12.2.** Run `ice-restart` behind NATs (`topology="nat"`, same cut). Which
    candidates does the restart gather, and which pair is selected after it?
    """),
    code("""
    nat_restart = rtclab.run("ice-restart", topology="nat", hold_s=40, cut_at_s=5, cut_for_s=20)
    rows = nat_restart.events.query("kind == 'ice' and ((name == 'candidate' and value == 'gathered') or name == 'selected-pair')")
    for r in rows.itertuples():
        what = " ".join(r.detail.split()[4:8]) if r.name == "candidate" else f"{r.value} {r.detail}"
        print(f"{r.t_ms / 1000:6.2f} s  {r.actor}  {r.name}: {what}")
    """),
    md("""
    The first rows are the candidates of the call's start; the rows after ~21 s belong to
    the restart: each side gathers a new host candidate (a new port) and asks the STUN
    server again for a server-reflexive one, and the pair selected after the restart is
    again host/srflx, the same kind as before the cut, on the new ports. A restart starts
    ICE over: it would also find a relay pair if one were needed (try `nat="symmetric",
    turn=True`).

    **Exercise 12.3.** Write a caller that restarts ICE when `iceConnectionState` becomes
    `failed`, and run it against the `ice-restart` callee with the long cut. Does the call
    come back?
    """),
    code("""
    async def restart_on_ice_failed_caller(app):
        pc = app.RTCPeerConnection()
        pc.on("icecandidate", lambda candidate: app.send(
            {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))

        async def on_negotiationneeded():
            await pc.setLocalDescription(await pc.createOffer())
            app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})

        def on_iceconnectionstatechange():
            if pc.iceConnectionState == "failed":  # the wrong state machine to watch
                pc.restartIce()

        async def on_message(msg):
            if msg["type"] == "video-answer":
                await pc.setRemoteDescription(msg["sdp"])
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        pc.on("negotiationneeded", on_negotiationneeded)
        pc.on("iceconnectionstatechange", on_iceconnectionstatechange)
        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)


    mine = rtclab.run(caller=restart_on_ice_failed_caller, callee=rtclab.flows.ice_restart_callee,
                      hold_s=40, cut_at_s=5, cut_for_s=20)
    ev = mine.events
    print("restartIce calls:", len(ev.query("name == 'restartIce'")))
    print("caller iceConnectionState:", ev.query("actor == 'caller' and name == 'iceConnectionState'")["value"].tolist())
    print("caller connectionState:   ", ev.query("actor == 'caller' and name == 'connectionState'")["value"].tolist())
    """),
    md("""
    It never restarts: after a cut `iceConnectionState` goes to `disconnected` and stays
    there, while only `connectionState` says `failed` (in Chromium too, notebook 08 c). The
    handler waits for a state that never comes, and the call stays broken until it is
    closed. Watch `connectionState` as the `ice-restart` flow does.

    **Exercise 12.4.** Run `mdn` with a 4-second outage (`cut_for_s=4`). Does it survive
    this one, and why?
    """),
    code("""
    brief = rtclab.run("mdn", hold_s=30, cut_at_s=5, cut_for_s=4)
    print(brief.outcome, f"- last row at {brief.events['t_ms'].max() / 1000:.1f} s;",
          "states after the cut:", brief.events.query("kind == 'state' and t_ms > 5000 and value != 'closed'")["value"].tolist())
    """),
    md("""
    It survives: the path is back before the ~6-second `disconnected` timer, no state
    changes, and the sample's handler has nothing to react to; the call runs for its full
    30 s. The sample hangs up on every outage longer than ~6 s: up to ~16 s those are
    calls the browser would have recovered by itself, and longer ones an ICE restart could
    have saved.
    """),
    # ------------------------------------------------------------------ 11
    md("""
    ## 11 · Answering the call

    **Exercise 11.1.** Run `article` with a reordering channel for a few seeds. Does the
    callee's offer ever overtake its answer? What does the caller's queue do?
    """),
    code("""
    reordered = rtclab.sweep("article", trials=10, seed=0, progress=False, workers=1,
                             signaling_latency_ms=50, jitter_ms=40, reorder=0.5)
    reordered["outcome"].value_counts().to_dict(), int(reordered["candidates_lost"].sum()), int(reordered["candidates_rejected"].sum())
    """),
    md("""
    Every call connects, and no candidate is lost or refused. The callee's offer cannot
    overtake its answer here: the answer leaves when the offer arrives, the re-offer only
    after the user's click, a second later, far beyond the channel's jitter. What the
    reordering does reorder are candidates and the first answer; the caller's queue holds
    the callee's candidates that overtake the answer, and the callee's queue those of the
    caller that overtake the offer.

    **Exercise 11.2.** Set `answer_delay_ms=10` for both early-answer flows. What happens to
    `answer_to_media_ms`?
    """),
    code("""
    pd.DataFrame({(flow, d): rtclab.run(flow, answer_delay_ms=d).metrics[["t_connected_ms", "t_answer_click_ms", "answer_to_media_ms"]]
                  for flow in ("article", "counteroffer") for d in (10, 1000)})
    """),
    md("""
    With a click at 30 ms the call is not connected yet (`t_connected_ms` is later), so
    answering also waits for the rest of ICE and DTLS, and both flows end up equal: the
    renegotiation or the `call-accepted` message travels while the connection is still
    being set up. The early answer hides the set-up only behind a think time longer than
    the set-up.

    **Exercise 11.3.** Behind symmetric NATs with TURN, does the `article` flow's second
    round gather new relay candidates?
    """),
    code("""
    relayed = rtclab.run("article", topology="nat", nat="symmetric", turn=True)
    relayed.metrics[["outcome", "selected_pair", "messages_after_answer", "candidates_after_answer"]]
    """),
    md("""
    No: the renegotiation reuses the bundled transport and its relay allocation, so the
    click costs the same two messages and no candidate, relay or not.

    **Exercise 11.4.** In Chromium's `glare-during-call-polite-renegotiates` trace the
    polite callee's second video ends up as mid `3`. Which offer used mid `2`, and what
    happened to it? Does rtclab's `Peer` number it the same way?
    """),
    code("""
    own = rtclab.data.chromium_trace("RTCPeerConnection-perfect-negotiation/glare-during-call-polite-renegotiates")
    own.query("actor == 'callee' and name in ['setLocalDescription', 'setRemoteDescription', 'negotiationneeded', 'observe:mids']")[["t_ms", "name", "value", "detail"]]
    """),
    md("""
    The callee's first offer (its first `setLocalDescription` after the data call was
    set up) already had two video sections: its camera and its second video, mids `1` and
    `2`. The caller's colliding offer arrived; the polite callee's `setRemoteDescription`
    rolled that offer back and applied the caller's, whose only video section is mid `1`,
    and `addTrack`'s first transceiver took it. The second video was left with no mid,
    `negotiationneeded` fired again, and the next offer named its section `3`: Chromium
    does not hand out mid `2` again, although that offer was never answered.

    rtclab's `Peer` runs the same scenario in the simulated network:
    """),
    code("""
    from concurrent.futures import ThreadPoolExecutor

    from rtclab.conformance import runner

    (scenario,) = runner.selected(["RTCPeerConnection-perfect-negotiation/glare-during-call-polite-renegotiates"])
    with ThreadPoolExecutor(1) as pool:  # the simulation runs its own event loop: not in the notebook's
        mine = pool.submit(runner.run_sim, scenario).result()
    mine.query("name in ['rollback', 'observe:mids']")[["actor", "name", "value", "detail"]]
    """),
    md("""
    The same numbering, `1,3` on both sides, and the `rollback` row says what Chromium's
    trace cannot show: an implicit rollback of a re-negotiation that kept the call. rtclab
    keeps the mids of a rolled-back offer out of use because Chromium does. It matters in
    notebook 11's naive run: had the caller's next offer reused mid `1`, the callee would
    have accepted it and the naive code would have looked as if it worked; with mid `2`,
    as in Chromium, the callee refuses it and the two sides stay in disagreement.
    """),
    # ------------------------------------------------------------------ 14
    md("""
    ## 14 · The article, claim by claim

    **Exercise 14.1.** Fix `literal_callee` (claim 3) and check it.
    """),
    code("""
    async def fixed_callee(app):
        pc = None
        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                pc = app.RTCPeerConnection()
                rtclab.flows.send_candidates(app, pc)
                await pc.setRemoteDescription(msg["sdp"])               # the offer first
                await pc.setLocalDescription(await pc.createAnswer())  # then our answer, applied
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate" and pc is not None:
                await pc.addIceCandidate(msg["candidate"])
        app.on_message(on_message)

    print(rtclab.check(caller=rtclab.flows.basic_caller, callee=fixed_callee, expect="connected", deadline_s=10))
    """),
    md("""
    The order is the whole fix here: every call connects and no candidate is lost, because
    on an in-order channel the caller's candidates always arrive after its offer. (This
    callee, like the literal one, sends no camera, so a run cannot tell that no more media
    is coming and each call lasts until its deadline: `deadline_s=10` keeps the check short.) Under a
    reordering channel this callee would still drop the ones that overtake the offer
    (notebook 03's lesson); a queue fixes that too.

    **Exercise 14.2.** With `answer_delay_ms=5000`, how many of the caller's frames could the
    callee's page have shown before its user decided?
    """),
    code("""
    slow = rtclab.run("article", answer_delay_ms=5000).metrics
    print(round((slow["t_answer_click_ms"] - slow["t_first_frame_callee_ms"]) / (1000 / 30)), "frames at 30 frames per second")
    """),
    md("""
    Close to five seconds of video: the frames arrive whether or not the page shows them
    (rtclab's callee decodes them too). That is claim 9's verdict in numbers.

    **Exercise 14.3.** For claim 13, keep the channel in order (`reorder=0`, jitter only):
    does the MDN sample still lose calls?
    """),
    code("""
    # the sweep of exercise 3.2 (mdn, 10 trials, reorder=0, jitter 40 ms): no need to run it again
    print(in_order.groupby(["outcome", "reason"]).size().to_string())
    """),
    md("""
    It can. With order kept, no candidate overtakes the description it follows any more,
    but jitter can still bring the callee's answer and its own re-offer in at the same
    moment, and the sample's glare branch then mishandles the re-offer (exercise 3.2).
    "Don't rely on order" includes the order in which your own handlers finish.
    """),
    # ------------------------------------------------------------------ 13
    md("""
    ## 13 · Call control and privacy

    **Exercise 13.1.** Run `counteroffer` declined behind NATs with a TURN server. Which of
    the callee's addresses does the caller know although the user said no?
    """),
    code("""
    no = rtclab.run("counteroffer", topology="nat", turn=True, decision="decline")
    print(no.outcome, "-", no.reason)
    print(rtclab.exposed_candidates(no).to_string(index=False))
    """),
    md("""
    All of them, each delivered before the click: the private host address, the public
    address its NAT maps it to (server-reflexive) and the TURN relay. Declining closes the
    connection and sends no media, but it cannot take back candidates the callee trickled
    while the phone rang. Only an app that keeps them until the user decides
    (`queue-on-click`) or offers only a relay (`relay-until-accepted`) avoids that.

    **Exercise 13.2.** Run `relay-until-accepted` without a TURN server (`turn=False`).
    What does the callee gather before the click, what happens to the call, and which part
    of the result is rtclab's limit rather than a browser's behaviour?
    """),
    code("""
    bare = rtclab.run("relay-until-accepted", topology="nat", turn=False)
    print(bare.outcome, "-", bare.reason)
    print("callee candidates gathered:", len(bare.events.query("actor == 'callee' and kind == 'ice' and value == 'gathered'")))
    bare.events.query("kind == 'error' or (kind == 'state' and name == 'connectionState')")[["t_ms", "actor", "kind", "name", "value"]]
    """),
    md("""
    A relay-only connection with no TURN server has nothing to gather, so the callee sends
    no candidate at all and the call cannot connect while the phone rings: the caller's
    candidates have no local partner on the callee's side. Privacy is complete, but the
    early answer buys no speed.

    On the click, the callee switches to `all` and restarts ICE. The `restartIce` error row
    is rtclab's limit: its restart splices a fresh connection into one that has connected
    before, and this one never did, so the call ends at the deadline. Chromium gathers
    host candidates after the same `setConfiguration` and `restartIce()` and connects, as
    its stored run shows:
    """),
    code("""
    chromium_policy = rtclab.data.chromium_trace("RTCConfiguration-iceTransportPolicy/relay-then-all-after-restartIce")
    chromium_policy.query("name.str.startswith('observe')", engine="python")[["t_ms", "name", "value"]]
    """),
    md("""
    **Exercise 13.3.** Change the article's caller so that its camera stays off the wire
    until the callee accepts, and check that the callee's first frame now comes after the
    click.

    In `article` the callee accepts by offering its own camera, so the caller can take the
    callee's `video-offer` as its signal: the camera is added (to negotiate it) and at once
    replaced by nothing; the offer from the callee puts it back.
    """),
    code("""
    from rtclab.flows import CandidateQueue, send_candidates, send_offer_on_negotiationneeded


    async def gated_article_caller(app):
        pc = app.RTCPeerConnection()
        queue = CandidateQueue()
        send_candidates(app, pc, end_of_candidates=False)
        await send_offer_on_negotiationneeded(app, pc)
        camera = app.getUserMedia()[0]
        sender = pc.addTrack(camera)
        await pc.replaceTrack(sender, None)  # the gate: nothing leaves before the callee accepts

        async def on_message(msg):
            if msg["type"] == "video-answer":
                await pc.setRemoteDescription(msg["sdp"])
                await queue.flush(pc)
            elif msg["type"] == "video-offer":  # the callee clicked Answer and offers its camera
                await pc.replaceTrack(sender, camera)  # open the gate
                await pc.setRemoteDescription(msg["sdp"])
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate":
                await queue.add(msg["candidate"])

        app.on_message(on_message)


    gated = rtclab.run(caller=gated_article_caller, callee=rtclab.flows.article_callee, topology="nat")
    click = gated.metrics["t_answer_click_ms"]
    first = gated.events.query("actor == 'callee' and name == 'first-frame'")["t_ms"]
    print(gated.outcome, "- the callee's first frame at", first.iloc[0], "ms, the click at", click, "ms")
    """),
    md("""
    The call still connects while the phone rings, and media flows both ways once the
    callee accepts, but the callee's page receives nothing of the caller's camera before
    its user clicks. The callee's addresses still reach the caller early: the gate is
    about media, not about ICE.
    """),
    md("""
    ## Fix-the-code exercises

    Notebooks 02 to 08 each end with app code that has a bug and a one-line check. Here is
    one way to fix each, with the check passing. Other fixes pass too: the check looks at
    outcomes and lost candidates, not at the code.
    """),
    md("""
    ### 02 · Offer after your tracks

    The offer moves into the `negotiationneeded` handler, which the peer connection fires
    once `addTrack` has given it something to negotiate. The rest of the caller is unchanged.
    """),
    code("""
    async def my_caller(app):
        pc = app.RTCPeerConnection()
        pc.on("icecandidate", lambda candidate: app.send(
            {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))

        async def on_negotiationneeded():  # fires after addTrack: now there is media to offer
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
    """),
    code("""
    rtclab.exercises.check_02(my_caller)
    """),
    md("""
    ### 03 · The timing trap

    Candidates that arrive before the peer connection exists go into a list; right after
    `setRemoteDescription` the callee adds them. Later candidates go straight to
    `addIceCandidate` (the operations chain orders them after `setRemoteDescription`).
    This is the `queue-on-click` flow.
    """),
    code("""
    async def my_callee(app):
        pc = None
        early = []  # candidates that arrive while the phone rings

        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                await app.user.answer()
                pc = app.RTCPeerConnection()
                pc.on("icecandidate", lambda candidate: app.send(
                    {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))
                await pc.setRemoteDescription(msg["sdp"])
                for candidate in early:  # now they have somewhere to go
                    await pc.addIceCandidate(candidate)
                early.clear()
                for track in app.getUserMedia():
                    pc.addTrack(track)
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate":
                if pc is None:
                    early.append(msg["candidate"])
                else:
                    await pc.addIceCandidate(msg["candidate"])

        app.on_message(on_message)
    """),
    code("""
    rtclab.exercises.check_03(my_callee)
    """),
    md("""
    ### 04 · Works on my machine

    One line: `await pc.addIceCandidate(msg["candidate"])`. With the caller's server-reflexive
    candidates added, the callee can check the pair that crosses both NATs.
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
                await pc.addIceCandidate(msg["candidate"])

        app.on_message(on_message)
    """),
    code("""
    rtclab.exercises.check_04(my_callee)
    """),
    md("""
    ### 05 · Offer, counter-offer, answer

    Every candidate goes through a `CandidateQueue`: it is added at once when the peer
    connection has a remote description, kept otherwise, and `flush` adds the kept ones
    right after `setRemoteDescription`.
    """),
    code("""
    async def my_callee(app):
        pc = None
        queue = rtclab.flows.CandidateQueue()  # keeps candidates until there is a remote description

        async def on_message(msg):
            nonlocal pc
            if msg["type"] == "video-offer":
                if pc is not None:
                    return
                pc = app.RTCPeerConnection()
                pc.on("icecandidate", lambda candidate: candidate and app.send(
                    {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))
                await pc.setRemoteDescription(msg["sdp"])
                await queue.flush(pc)  # the candidates that overtook the offer
                video = next(t for t in pc.getTransceivers() if t.kind == "video")
                video.direction = "sendrecv"
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
                await app.user.answer()
                await pc.replaceTrack(video.sender, app.getUserMedia()[0])
                app.send({"type": "call-accepted", "target": app.other})
            elif msg["type"] == "new-ice-candidate":
                await queue.add(msg["candidate"])

        app.on_message(on_message)
    """),
    code("""
    rtclab.exercises.check_05(my_callee)
    """),
    md("""
    ### 06 · Trickle vs vanilla ICE

    The caller waits until `iceGatheringState` is `complete` before sending: only then does
    `pc.localDescription` hold all candidates. That is the `vanilla` caller.
    """),
    code("""
    async def my_caller(app):
        pc = app.RTCPeerConnection()
        gathered = asyncio.Event()
        pc.on("icegatheringstatechange",
              lambda: pc.iceGatheringState == "complete" and gathered.set())

        async def on_negotiationneeded():
            await pc.setLocalDescription(await pc.createOffer())
            await gathered.wait()  # now localDescription carries every candidate
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
    ### 07 · Glare and perfect negotiation

    MDN's pattern: the impolite caller ignores an offer that collides with its own; the
    polite callee applies it, which rolls its own offer back, and answers. Candidate errors
    are swallowed only while an offer is being ignored.
    """),
    code("""
    async def my_app(app):
        polite = app.actor == "callee"
        if polite:
            app.user.call()
        pc = app.RTCPeerConnection()
        making_offer = False
        ignore_offer = False
        pc.on("icecandidate", lambda candidate: app.send(
            {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))

        async def on_negotiationneeded():
            nonlocal making_offer
            try:
                making_offer = True
                await pc.setLocalDescription()
                app.send({"type": "video-offer", "target": app.other, "sdp": pc.localDescription})
            finally:
                making_offer = False

        async def on_message(msg):
            nonlocal ignore_offer
            if msg["type"] in ("video-offer", "video-answer"):
                description = msg["sdp"]
                collision = description["type"] == "offer" and (making_offer or pc.signalingState != "stable")
                ignore_offer = not polite and collision
                if ignore_offer:
                    return
                await pc.setRemoteDescription(description)  # the polite side rolls back its own offer
                if description["type"] == "offer":
                    await pc.setLocalDescription()
                    app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate":
                try:
                    await pc.addIceCandidate(msg["candidate"])
                except Exception:
                    if not ignore_offer:
                        raise

        pc.on("negotiationneeded", on_negotiationneeded)
        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)
    """),
    code("""
    rtclab.exercises.check_07(my_app)
    """),
    md("""
    ### 08 · Timeouts

    Each side forwards its candidates from an `icecandidate` handler, registered as soon as
    its peer connection exists (the callee's before `setRemoteDescription`, so it misses
    none).
    """),
    code("""
    def send_my_candidates(app, pc):
        pc.on("icecandidate", lambda candidate: app.send(
            {"type": "new-ice-candidate", "target": app.other, "candidate": candidate}))


    async def my_caller(app):
        pc = app.RTCPeerConnection()
        send_my_candidates(app, pc)

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
                send_my_candidates(app, pc)  # before setRemoteDescription: no candidate missed
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

    ## Summary

    * Most answers come from one idea per notebook: candidates need a peer connection and a
      remote description to land on (01, 03, 05), an offer describes only what exists when it
      is made (02), NATs decide which pairs can work (04), and the browser's timers are its own
      (~6 s to `disconnected`, 15 s to `failed`), with none at all when no candidate was
      exchanged (08, 12).
    * Where a result here differs from what you expected, trust the event table: it is what
      the run did.
    """),
]
