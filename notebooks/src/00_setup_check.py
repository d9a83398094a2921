from build import code, md

CELLS = [
    md("""
    # 0 · Set-up check

    **Overview.** Before the course starts, this notebook checks that rtclab and its
    dependencies are installed, runs one complete call between two WebRTC peers,
    and tells you where to go next. It takes a few seconds.

    **Time.** About 5 minutes (the call itself takes seconds).

    **Prerequisites.** An environment made from this repository (`pip install -e .`,
    `conda env create -f environment.yml`, or Binder). No camera, microphone or
    internet connection is needed: media is synthetic and everything runs on this machine.
    """),
    code("""
    import rtclab
    """),
    md("""
    ## What is installed

    rtclab drives [aiortc](https://aiortc.readthedocs.io), a WebRTC implementation
    in Python, and records what happens with pandas. The versions below are the
    ones this course was checked with (aiortc 1.16, aioice 0.13).
    """),
    code("""
    rtclab.versions()
    """),
    md("""
    ## Is everything in place?

    `rtclab.check_setup()` looks for the usual problems and says, for each, `ok` or
    what to do. One of them catches a classic trap: if you start Python (or Jupyter)
    in the folder that *contains* the repository, the repository folder — also
    called `rtclab` — hides the package, and `rtclab.run` fails with
    `module 'rtclab' has no attribute 'run'`. Start Python inside the repository
    folder instead (`python -m rtclab check` does the same checks from a terminal).
    """),
    code("""
    rtclab.check_setup()
    """),
    md("""
    ## One call

    `rtclab.run` plays a whole call between a *caller* and a *callee* and returns a
    `Run`. By default it runs on rtclab's **simulated network**: real aiortc code,
    but packets travel through an in-memory network on a virtual clock, so the
    result is the same on every machine and every time you run it.
    """),
    code("""
    call = rtclab.run("basic", seed=1)
    call
    """),
    md("""
    Every event of the call is a row of one table, `call.events`. Here are the first
    few rows: the caller's user clicks *Call*, the caller's page creates its peer
    connection, gets the (synthetic) camera and adds its track.
    """),
    code("""
    call.events.head(8)
    """),
    md("""
    The outcome and the headline numbers come from that table alone:
    """),
    code("""
    call.metrics[["outcome", "t_connected_ms", "t_first_frame_ms", "candidates_added"]]
    """),
    md("""
    ## Where to go next

    | notebook | you will see |
    | --- | --- |
    | 01 · Anatomy of a call | the four state machines of each peer, the event table, the sequence diagram |
    | 02 · Offer after your tracks | why the offer must wait for `negotiationneeded` |
    | 03 · The timing trap | candidates that arrive before there is a peer connection to take them |
    | 04 · Works on my machine | a flat network forgives what a NAT does not |
    | 05 · Offer, counter-offer, answer | the article's fix, and how fast answering becomes |
    | 06 · Trickle vs vanilla ICE | what sending candidates early buys |
    | 07 · Glare and perfect negotiation | both sides calling at once |
    | 08 · Timeouts | calls that hang, and how long ICE takes to give up |
    | 09 · Playground | the call panel: Call, Answer, Hang up |

    ## Summary

    If the call above says `outcome='connected'`, your set-up works.

    **Try this:** run `rtclab.run("basic", network="real")` to make the same call over
    this machine's real UDP sockets. It uses the loopback address 127.0.0.1 only, so it
    works without Wi-Fi and nothing leaves the machine (`interface="lan"` gathers the
    machine's network addresses instead, for calls between two machines). Its timings
    vary from run to run, which is exactly why the rest of the course uses the
    simulated network.
    """),
]
