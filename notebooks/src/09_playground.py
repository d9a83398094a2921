from build import code, md

CELLS = [
    md("""
    # 9 · Playground: the call panel

    **Overview.** The MDN sample app calls whoever you click in its user list, answers an
    incoming call by itself, and has a *Hang up* button; this course adds the *Answer*
    click the article is about. rtclab's `CallPanel` puts *Call*, *Answer* and *Hang up*,
    and the run parameters you met in notebooks 01–08, into one widget. Click
    through calls, change the network, and watch the event table and the timing plot
    of each call. This notebook shows the panel, explains its controls, then drives it
    from code so that you can check what it does.

    **Time.** About 20 minutes, more if you explore.

    **Prerequisites.** Notebooks 01–05 (the flows and their outcomes); 06–08 for the
    exercises. The panel needs a notebook front-end with widgets (JupyterLab, Notebook
    7, VS Code).
    """),
    code("""
    import rtclab
    from rtclab.widgets import CallPanel
    """),
    md("""
    ## The panel

    Opened before you run anything, the cell below shows a *picture* of the panel:
    its buttons need a running kernel. Run the notebook (*Run ▸ Run All Cells*) and
    the real panel takes its place.
    """),
    code("""
    panel = CallPanel("counteroffer")
    panel
    """),
    md("""
    What is on it:

    * **flow**: the app code that runs on both pages (`rtclab.flow_source(name)` shows it).
    * **network**: `sim`, the simulated network with its virtual clock (deterministic),
      or `real`, this machine's UDP sockets (live, timings vary).
    * **topology** and **NAT**: a flat LAN, or each peer behind its own NAT of the
      chosen type (simulated network only).
    * **signaling latency (ms)**: the one-way latency of the signaling channel.
    * **think time (ms)**: how long the callee's user takes to click *Answer* when
      *auto-answer* is ticked.
    * **Call**: the caller's user clicks *Call*. The callee's phone rings. A new
      call clears the last one from the panel.
    * **Answer**: the callee's user answers.
    * **Hang up**: ends the call.

    Below the buttons, the panel shows the call's outcome, its event table
    (`r.table()`, every row: scroll inside it) and its plot (`r.plot()`).

    **How a click becomes a call.** With `network="real"` the call runs live on this
    machine's loopback address, like the sample app: the callee's app really waits
    for your *Answer* click, the table fills in as events happen, and the call stays
    up until you click *Hang up*. With `network="sim"` it can't:
    the virtual clock can't wait for a person. So *Call* starts the ringing, and
    *Answer* measures how long you took and then plays the whole call with that think
    time. Because the simulation is deterministic, everything before your click is
    exactly what happened while the phone rang.

    ## Driving the panel from code

    Each button calls a method (`panel.call()`, `panel.answer()`,
    `panel.hang_up()`), so you can script the panel. With *auto-answer* ticked,
    `call()` plays the call at once with the think time of the slider and returns the
    run:
    """),
    code("""
    panel.auto.value = True
    r = panel.call()
    print(r.outcome, "-", r.reason)
    """),
    md("""
    Untick *auto-answer* and the panel waits for *Answer*. `call()` returns nothing
    while the phone rings; `answer(think_ms=...)` answers with the given think time
    (instead of the measured one, so that the result is repeatable):
    """),
    code("""
    panel.auto.value = False
    print(panel.call())
    """),
    code("""
    r = panel.answer(think_ms=1500)
    print(r.outcome, "- Answer clicked at", r.metrics["t_answer_click_ms"], "ms")
    """),
    md("""
    The click time includes the signaling latency: the phone only rings once the
    offer has arrived. The panel's last run is kept in `panel.last_run`, a normal
    `Run`, so everything from the earlier notebooks works on it:
    """),
    code("""
    panel.last_run.metrics[["t_connected_ms", "t_answer_click_ms", "answer_to_media_ms"]]
    """),
    md("""
    The event table and the plot that the panel draws appear inside the widget
    itself, not as outputs of these cells; scroll up to the panel to see them.

    ## Your own apps

    The flows are ordinary app code, and so is yours: two `async` functions that get
    the page's `app` (`help(rtclab.App)` lists what it offers and the browser API each
    method stands for). Here is a small caller and callee built from the helpers the
    built-in flows use (`rtclab.flows.send_candidates` is an `icecandidate` handler that
    forwards every candidate; `send_offer_on_negotiationneeded` makes the offer in
    `negotiationneeded`):
    """),
    code("""
    from rtclab.flows import send_candidates, send_offer_on_negotiationneeded


    async def my_caller(app):
        pc = app.RTCPeerConnection()
        send_candidates(app, pc)
        await send_offer_on_negotiationneeded(app, pc)

        async def on_message(msg):
            if msg["type"] == "video-answer":
                await pc.setRemoteDescription(msg["sdp"])
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        app.on_message(on_message)
        for track in app.getUserMedia():
            pc.addTrack(track)


    async def my_callee(app):
        pc = app.RTCPeerConnection()  # ready before the offer; a candidate that overtook the offer would still need a queue
        send_candidates(app, pc)

        async def on_message(msg):
            if msg["type"] == "video-offer":
                await pc.setRemoteDescription(msg["sdp"])
                for track in app.getUserMedia():
                    pc.addTrack(track)
                await pc.setLocalDescription(await pc.createAnswer())
                app.send({"type": "video-answer", "target": app.other, "sdp": pc.localDescription})
            elif msg["type"] == "new-ice-candidate":
                await pc.addIceCandidate(msg["candidate"])

        app.on_message(on_message)
    """),
    md("""
    `rtclab.run(caller=..., callee=...)` plays them with any of the run parameters;
    `rtclab.Flow` gives them a name, for sweeps, plots and the panel:
    """),
    code("""
    print(rtclab.run(caller=my_caller, callee=my_callee, topology="nat", seed=1))
    mine = rtclab.Flow("mine", "a callee that is ready before the offer", my_caller, my_callee)
    print(CallPanel(mine, auto_answer=True).call())
    """),
    md("""
    A sweep may run its trials in worker processes. A function defined in a notebook
    cell cannot be sent to another process by Python's standard `pickle` (it only
    sends a function's name, and a worker cannot import this notebook), so rtclab
    sends your flow with `cloudpickle`, which copies the code itself. The results are
    the same as in this process:
    """),
    code("""
    df = rtclab.sweep(mine, trials=3, grid={"topology": ["lan", "nat"]}, workers=2, progress=False)
    df.groupby("topology")["outcome"].value_counts()
    """),
    md("""
    When your code raises an exception that it does not catch, the call does not stop
    with a traceback: the exception becomes an `error` row, as an uncaught error in a
    page's console, and its `detail` says which line of *your* cell raised it. Here a
    callee with a typo:
    """),
    code("""
    async def typo_callee(app):
        async def on_message(msg):
            if msg["type"] == "video-offer":
                pc = app.RTCPeerConnection()
                await pc.setRemoteDescription(msg["sdp"])
                await pc.setLocalDescription(await pc.createAnser())

        app.on_message(on_message)


    r = rtclab.run(caller=my_caller, callee=typo_callee, deadline_s=10)
    print(r.outcome, "-", r.events.query("kind == 'error' and actor == 'callee'")["detail"].iloc[0])
    """),
    md("""
    ## Summary

    * `CallPanel(flow)` gives you the sample app's buttons with the run parameters as
      controls; each button is a method you can also call from code.
    * On the simulated network, *Answer* replays the call with your think time; on
      `network="real"` the call is live, from *Call* through *Answer* to *Hang up*.
    * `panel.last_run` is the last call as a `Run`, for tables, metrics and plots.
    * Your own apps run like the built-in flows: `rtclab.run(caller=..., callee=...)`,
      `rtclab.Flow` for a name, `sweep` over worker processes, and the panel. An
      uncaught exception in your code is an `error` row naming your line.

    **Try this** (in the panel above)

    1. Choose `answer-on-click` and topology `nat`. Call, wait, Answer. What does the
       status say, and where do the lost candidates appear in the plot? Switch back to
       `counteroffer`.
    2. With `answer-on-click` on the LAN, raise *signaling latency* to 300 and answer. Then
       do the same with `counteroffer`. Compare the "answer→media" time in the status
       line (notebook 05 measured the same thing with a sweep).
    3. Choose `perfect`: both users click Call at once (glare). Which peer rolls back?
       (Find the `rollback` row in the table.)
    4. Choose `forgot-candidates`: how long does the panel take to come back, in
       virtual seconds, and why? (Notebook 08.)
    5. Switch *network* to `real` and make a live call: Call, wait a few seconds,
       Answer, then Hang up. Why do its timings change from one call to the next?
    """),
]
