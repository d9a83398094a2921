"""Regenerate the browser-trace fixtures of this folder with this machine's Chromium.

Each scenario runs two peer connections of one page in headless Chromium (in a
loopback-only network namespace, like ``rtclab.browser``), then downloads from
``chrome://webrtc-internals`` both the "webrtc-internals dump" (JSON; for
``basic`` also the gzip one, *Compress result* checked) and the "rtcstats dump"
(JSON Lines, file format 3). Run as root from the repository root::

    python tests/data/browser/make.py

Scenarios (JavaScript below):

``basic``
    offer on ``negotiationneeded``, candidates trickled both ways: connects.
``early-candidates``
    the callee's app adds the caller's candidates as they come, before its
    ``setRemoteDescription`` (delayed 400 ms as if the user had to click), and
    swallows the ``InvalidStateError``; the caller still gets the callee's
    candidates, so on loopback the call connects anyway.
``forgot-candidates``
    no ``icecandidate`` handler on either side: nothing is exchanged.
``naive-glare``
    both peer connections offer at once and each applies the other's offer
    (Chromium rolls its own back implicitly and answers), then each applies the
    other's answer in ``stable``: the page catches ``InvalidStateError`` twice
    (the dumps log only the message, "Called in wrong state: stable").

``python tests/data/browser/make.py NAME...`` regenerates only those scenarios.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

SCENARIOS = {
    "basic": r"""async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  const caller = new NativePC(config), callee = new NativePC(config);
  caller.onicecandidate = (e) => callee.addIceCandidate(e.candidate);
  callee.onicecandidate = (e) => caller.addIceCandidate(e.candidate);
  caller.onnegotiationneeded = async () => {
    await caller.setLocalDescription();
    await callee.setRemoteDescription(caller.localDescription);
    await callee.setLocalDescription();
    await caller.setRemoteDescription(callee.localDescription);
  };
  for (const track of stream.getTracks()) caller.addTrack(track, stream);
  const t0 = performance.now();
  while (!(caller.connectionState === "connected" && callee.connectionState === "connected")) {
    if (performance.now() - t0 > 10000) break;
    await new Promise(r => setTimeout(r, 10));
  }
  await new Promise(r => setTimeout(r, 1500));
  window.keep = [caller, callee, stream];
  return [caller.connectionState, callee.connectionState];
}""",
    "early-candidates": r"""async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  const caller = new NativePC(config), callee = new NativePC(config);
  caller.onicecandidate = async (e) => {
    try { await callee.addIceCandidate(e.candidate); }
    catch (err) { console.log("ignored", err.name); }   // the app swallows the error
  };
  callee.onicecandidate = (e) => caller.addIceCandidate(e.candidate);
  caller.onnegotiationneeded = async () => {
    await caller.setLocalDescription();
    const offer = caller.localDescription;
    await new Promise(r => setTimeout(r, 400));   // the callee's user clicks Answer later
    await callee.setRemoteDescription(offer);
    await callee.setLocalDescription();
    await caller.setRemoteDescription(callee.localDescription);
  };
  for (const track of stream.getTracks()) caller.addTrack(track, stream);
  const t0 = performance.now();
  while (!(caller.connectionState === "connected" && callee.connectionState === "connected")) {
    if (performance.now() - t0 > 10000) break;
    await new Promise(r => setTimeout(r, 10));
  }
  await new Promise(r => setTimeout(r, 1500));
  window.keep = [caller, callee, stream];
  return [caller.connectionState, callee.connectionState];
}""",
    "forgot-candidates": r"""async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  const caller = new NativePC(config), callee = new NativePC(config);
  caller.onnegotiationneeded = async () => {
    await caller.setLocalDescription();
    await callee.setRemoteDescription(caller.localDescription);
    await callee.setLocalDescription();
    await caller.setRemoteDescription(callee.localDescription);
  };
  for (const track of stream.getTracks()) caller.addTrack(track, stream);
  await new Promise(r => setTimeout(r, 3000));
  window.keep = [caller, callee, stream];
  return [caller.connectionState, callee.connectionState];
}""",
    "naive-glare": r"""async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: true});
  const a = new NativePC(config), b = new NativePC(config);
  a.onicecandidate = (e) => b.addIceCandidate(e.candidate).catch(() => {});
  b.onicecandidate = (e) => a.addIceCandidate(e.candidate).catch(() => {});
  for (const track of stream.getTracks()) { a.addTrack(track, stream); b.addTrack(track.clone(), stream); }
  await Promise.all([a.setLocalDescription(), b.setLocalDescription()]);   // both click Call
  const offerA = a.localDescription, offerB = b.localDescription;
  const errors = [];
  const answer = async (pc, offer) => {
    await pc.setRemoteDescription(offer);                                   // naive: answer whatever comes in
    await pc.setLocalDescription();
    return pc.localDescription;
  };
  const [answerA, answerB] = await Promise.all([answer(a, offerB), answer(b, offerA)]);
  for (const [pc, ans] of [[a, answerB], [b, answerA]]) {
    try { await pc.setRemoteDescription(ans); } catch (err) { errors.push(err.name); }   // too late: stable
  }
  await new Promise(r => setTimeout(r, 2000));
  window.keep = [a, b, stream];
  return [a.connectionState, b.connectionState, errors];
}""",
}


async def _scenario(name: str, js: str) -> None:
    from rtclab.browser import BrowserSide, launch
    from rtclab.trace import Trace

    async with launch() as browser:
        context = await browser.new_context(accept_downloads=True)
        try:
            internals = await context.new_page()
            await internals.goto("chrome://webrtc-internals", timeout=15000)
            await internals.wait_for_timeout(300)

            class _Ctx:  # BrowserSide opens its page in this context
                new_page = context.new_page

            async with BrowserSide(_Ctx, "caller", Trace()) as side:
                states = await side.evaluate(js, timeout=30)
                print(name, states, flush=True)
                await internals.bring_to_front()
                await internals.wait_for_timeout(300)
                await internals.click("details.peer-connection-dump-root summary")
                shapes = [("#dump-click-target", False, f"{name}.internals.json"),
                          ("#dump-click-target-rtcstats", None, f"{name}.rtcstats.jsonl")]
                if name == "basic":
                    shapes.append(("#dump-click-target", True, f"{name}.internals.json.gz"))
                for button, compress, out in shapes:
                    if compress is not None:
                        await (internals.check if compress else internals.uncheck)("#dump-checkbox")
                    async with internals.expect_download(timeout=15000) as info:
                        await internals.click(button)
                    download = await info.value
                    await download.save_as(str(HERE / out))
                    print("  wrote", out, (HERE / out).stat().st_size, "bytes", flush=True)
        finally:
            await context.close()


def main() -> int:
    if os.environ.get("RTCLAB_ISOLATED") != "1":
        from rtclab.browser import isolated_command

        env = dict(os.environ, RTCLAB_ISOLATED="1")
        cmd = isolated_command([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
        return subprocess.run(cmd, env=env, timeout=600).returncode
    wanted = sys.argv[1:] or list(SCENARIOS)
    for name in wanted:
        asyncio.run(_scenario(name, SCENARIOS[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
