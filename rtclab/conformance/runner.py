"""Running scenarios: in Chromium (one page, side by side), and on Peer (simulated and real network).

Chromium runs need a loopback-only network namespace (root): :func:`run_isolated`
starts ``python -m rtclab.conformance`` inside one, as :mod:`rtclab.browser` does.
The simulated runs need nothing and are deterministic; the real-network runs use
this machine's UDP (inside the namespace: ``127.0.0.1``, see
:func:`rtclab.browser.allow_loopback_gathering`).
"""

from __future__ import annotations

import asyncio
import subprocess
from importlib import import_module
import sys
from collections.abc import Iterable
from typing import Any

import pandas as pd

from .core import SCENARIOS, Scenario
from .harness import JS_RUNNER, PeerHarness, UdpPlumbing, rows_to_trace, run_peer_steps

__all__ = ["ChromiumResult", "UnknownScenario", "run_chromium", "run_isolated", "run_real", "run_sim", "selected"]

#: At most this many short scenarios at once (the timer scenarios all start at once).
CONCURRENCY = 4
#: A scenario whose deadline is longer than this is a timer scenario.
TIMER_S = 20.0

ChromiumResult = dict[str, Any]


class UnknownScenario(KeyError):
    """A scenario name that is not defined."""


def selected(names: Iterable[str] | None = None) -> list[Scenario]:
    """The scenarios named (all when ``None``), in definition order; unknown names raise."""
    import_module(f"{__package__}.scenarios")  # registers them

    if not names:
        return list(SCENARIOS.values())
    names = list(names)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise UnknownScenario(f"unknown conformance scenario(s) {unknown}; see python -m rtclab.conformance list")
    return [SCENARIOS[n] for n in names]


async def _side_by_side(items: list[Scenario], one: Any, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    """Run ``one(sc)`` for every scenario: timer scenarios at once, the others ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(sc: Scenario) -> tuple[str, Any]:
        if sc.timeout_s > TIMER_S:
            return sc.name, await one(sc)
        async with gate:
            return sc.name, await one(sc)

    timers = sorted(items, key=lambda s: s.timeout_s <= TIMER_S)  # start the long ones first
    done = await asyncio.gather(*(gated(sc) for sc in timers))
    return {name: result for name, result in sorted(done, key=lambda kv: [s.name for s in items].index(kv[0]))}


# --------------------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------------------


async def run_chromium(items: list[Scenario]) -> dict[str, Any]:
    """Run scenarios in one headless Chromium page: ``{"version", "user_agent", "frames": {name: frame}}``."""
    from ..browser import BrowserSide, launch

    plumbing = UdpPlumbing()
    frames: dict[str, pd.DataFrame] = {}
    out: dict[str, Any] = {"frames": frames}
    try:
        async with launch() as browser:
            out["version"] = browser.version
            async with BrowserSide(browser, "caller") as side:
                page = side.page
                await page.expose_function("conformanceRelayPort", lambda rid, s, ip, port: plumbing.relay(rid).port_for(s, ip, int(port)))
                await page.expose_function("conformanceRelayCut", lambda rid: plumbing.relay(rid).cut())
                await page.expose_function("conformanceRelayHeal", lambda rid: plumbing.relay(rid).heal())
                await page.expose_function("conformanceBlackhole", lambda: plumbing.blackhole())

                async def one(sc: Scenario) -> pd.DataFrame:
                    try:
                        res = await asyncio.wait_for(page.evaluate(JS_RUNNER, [sc.name, sc.js, sc.timeout_s * 1000]), sc.timeout_s + 20)
                        out["user_agent"] = res.get("userAgent", "")
                        rows = res["rows"]
                    except Exception as exc:  # the page broke: record it, go on with the others
                        rows = [["network", 0.0, "error", "runner", type(exc).__name__, "", str(exc)[:500], ""]]
                    finally:
                        plumbing.close(prefix=sc.name + "#")
                    return rows_to_trace(rows).frame()

                frames.update(await _side_by_side(items, one))
                if side.page_errors:
                    out["page_errors"] = side.page_errors
    finally:
        plumbing.close()
    return out


# --------------------------------------------------------------------------------------
# Peer
# --------------------------------------------------------------------------------------


def run_sim(sc: Scenario, *, seed: int = 0) -> pd.DataFrame:
    """One scenario on Peer in the simulated network (``lan``, no STUN/TURN); deterministic."""
    from ..network import SimNetwork
    from ..network import run_sim as _run_sim

    net = SimNetwork("lan", seed=seed, stun=False, turn=False)

    async def main() -> Any:
        h = PeerHarness("sim", net=net)
        net.attach(h.trace.record)
        return await run_peer_steps(sc.peer, h, sc.timeout_s)

    return _run_sim(main, net).frame()


async def run_real(items: list[Scenario]) -> dict[str, pd.DataFrame]:
    """Scenarios on Peer on this machine's real UDP, side by side as in Chromium."""

    async def one(sc: Scenario) -> pd.DataFrame:
        return (await run_peer_steps(sc.peer, PeerHarness("real"), sc.timeout_s)).frame()

    return await _side_by_side(items, one)


def run_isolated(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m rtclab.conformance args`` in a loopback-only network namespace (root)."""
    import os

    from ..browser import _kill_group, isolated_command

    cmd = isolated_command([sys.executable, "-m", "rtclab.conformance", *args])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise TimeoutError(f"conformance run timed out after {timeout} s: {' '.join(args)}\n{err[-3000:]}") from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
