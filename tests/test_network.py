"""Tests of rtclab.network: the deterministic simulated network running real aiortc/aioice."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aioice.ice
import aioice.stun
import aioice.turn
import aiortc
import aiortc.clock
import aiortc.mediastreams
import aiortc.rtcdtlstransport
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import aiortc.rtcsctptransport
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

import rtclab
from rtclab import network
from rtclab.network import SimNetwork, SimStalled, SimVersionError, host_scope, run_sim

ROOT = Path(__file__).resolve().parents[1]


def _ice_connection(pc: RTCPeerConnection) -> Any:
    """The aioice Connection under a pc (data channel or first transceiver)."""
    if pc.sctp is not None:
        return pc.sctp.transport.transport._connection
    return pc.getTransceivers()[0].sender.transport.transport._connection


async def _pair(
    net: SimNetwork | None,
    *,
    video: bool = False,
    datachannel: bool = True,
    hold_s: float = 0.0,
    ice_servers: list[Any] | None = None,
) -> dict[str, Any]:
    """Connect a raw aiortc pair (non-trickle), hold the call, close both pcs; report what happened."""
    loop = asyncio.get_running_loop()
    servers = ice_servers if ice_servers is not None else (net.ice_servers() if net else [])
    caller = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    callee = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    pcs = {"caller": caller, "callee": callee}
    states: dict[str, list[str]] = {name: [pc.connectionState] for name, pc in pcs.items()}
    times: dict[str, float] = {}
    settled = {name: loop.create_future() for name in pcs}
    frames: list[float] = []
    readers: list[asyncio.Task[None]] = []
    start = loop.time()

    def watch(name: str, pc: RTCPeerConnection) -> None:
        @pc.on("connectionstatechange")
        def on_state() -> None:
            states[name].append(pc.connectionState)
            if pc.connectionState == "connected":
                times[name] = loop.time() - start
            if pc.connectionState in ("connected", "failed", "closed") and not settled[name].done():
                settled[name].set_result(pc.connectionState)

    for name, pc in pcs.items():
        watch(name, pc)

    @callee.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            try:
                while True:
                    await track.recv()
                    frames.append(loop.time())
            except MediaStreamError:
                pass

        readers.append(asyncio.ensure_future(read()))

    result: dict[str, Any] = {"states": states, "times": times, "frames": frames}
    try:
        if datachannel:
            caller.createDataChannel("chat")
        if video:
            caller.addTrack(VideoStreamTrack())
        with host_scope("caller" if net else None):
            await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        with host_scope("callee" if net else None):
            await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        outcome = await asyncio.gather(*settled.values())
        result["outcome"] = dict(zip(pcs, outcome))
        result["t_settled"] = loop.time() - start
        if all(o == "connected" for o in outcome):
            nominated = _ice_connection(caller)._nominated[1]
            result["nominated"] = (nominated.local_candidate.type, nominated.remote_candidate.type)
            result["nominated_addr"] = (nominated.local_addr, nominated.remote_addr)
            result["caller_candidates"] = [c.type for c in _ice_connection(caller).local_candidates]
        if hold_s:
            await asyncio.sleep(hold_s)
        result["states_before_close"] = {name: list(s) for name, s in states.items()}
    finally:
        await caller.close()
        await callee.close()
        for reader in readers:
            reader.cancel()
    result["t_end"] = loop.time() - start
    return result


def _packets(net: SimNetwork) -> list[tuple[float, str, str, str]]:
    return [(round(t, 9), proto, value, detail) for t, proto, value, detail in net.packet_log]


# ---------------------------------------------------------------------------


def test_lan_datachannel_connects_fast() -> None:
    """On the lan a data-channel pair goes new → connecting → connected within a few virtual ms."""
    net = SimNetwork("lan", latency_ms=1.0)
    rows: list[tuple[Any, ...]] = []
    net.attach(lambda *a, **k: rows.append((a, k)))
    res = run_sim(lambda: _pair(net), net)
    print("lan connect (virtual s):", res["times"])
    assert res["outcome"] == {"caller": "connected", "callee": "connected"}
    for name in ("caller", "callee"):
        assert res["states_before_close"][name] == ["new", "connecting", "connected"]
        assert res["states"][name][-1] == "closed"
        assert res["times"][name] < 0.2
    assert res["nominated"] == ("host", "host")
    assert not [r for r in rows if r[0][1] == "error"]


def test_lan_video_track_frames_arrive() -> None:
    """On the lan a pair with aiortc's VideoStreamTrack connects and the callee decodes frames."""
    net = SimNetwork("lan", latency_ms=5.0)
    res = run_sim(lambda: _pair(net, video=True, datachannel=False, hold_s=1.0), net)
    assert res["states_before_close"]["caller"] == ["new", "connecting", "connected"]
    assert res["times"]["caller"] < 0.5
    assert len(res["frames"]) >= 20


def test_nat_port_restricted_uses_srflx() -> None:
    """Both behind port-restricted NATs with STUN: connects over server-reflexive addresses."""
    net = SimNetwork("nat", nat="port-restricted", turn=False, latency_ms=10.0, record_packets=True)
    res = run_sim(lambda: _pair(net), net)
    print("nat connect (virtual s):", res["times"])
    assert res["outcome"] == {"caller": "connected", "callee": "connected"}
    assert "srflx" in res["caller_candidates"]
    # aioice pairs a srflx candidate through its base (host) socket; the remote side is srflx.
    assert res["nominated"] == ("host", "srflx")
    assert res["nominated_addr"][1][0] == net.public_ip("callee")
    # host candidates of the other private network are unroutable
    assert any("unroutable" in p[3] for p in net.packet_log)


def test_nat_symmetric_stun_only_fails() -> None:
    """Both behind symmetric NATs with STUN only: ICE fails (filtered checks), at aioice's schedule."""
    net = SimNetwork("nat", nat="symmetric", turn=False, record_packets=True)
    res = run_sim(lambda: _pair(net), net)
    assert res["outcome"] == {"caller": "failed", "callee": "failed"}
    assert res["t_settled"] > 30
    assert net.stats["filtered"] > 0


def test_nat_symmetric_turn_connects_via_relay() -> None:
    """Both behind symmetric NATs with TURN: connects through a relayed candidate."""
    net = SimNetwork("nat", nat="symmetric", latency_ms=10.0)
    res = run_sim(lambda: _pair(net, video=True, hold_s=1.0), net)
    print("nat/symmetric via TURN connect (virtual s):", res["times"])
    assert res["outcome"] == {"caller": "connected", "callee": "connected"}
    assert "relay" in res["nominated"]
    assert network.SERVER_IP in (res["nominated_addr"][0][0], res["nominated_addr"][1][0])
    assert len(res["frames"]) >= 10


def test_mixed_nat_types_and_restricted_cone() -> None:
    """A full-cone caller and a restricted callee connect directly with STUN, no relay."""
    net = SimNetwork("nat", nat=("full-cone", "restricted"), turn=False)
    res = run_sim(lambda: _pair(net), net)
    assert res["outcome"] == {"caller": "connected", "callee": "connected"}
    assert "relay" not in res["nominated"]


def test_all_packets_dropped_ice_fails_in_virtual_time() -> None:
    """With every packet dropped ICE fails at aioice's retransmission schedule (~63.5 s virtual)."""
    net = SimNetwork("lan", stun=False, turn=False)
    net.drop_all()
    wall = time.perf_counter()
    res = run_sim(lambda: _pair(net), net)
    wall = time.perf_counter() - wall
    print(f"ICE failed at {res['t_settled']:.3f} s virtual in {wall * 1000:.1f} ms wall")
    assert res["outcome"] == {"caller": "failed", "callee": "failed"}
    assert res["t_settled"] > 30
    assert res["states"]["caller"][:3] == ["new", "connecting", "failed"]


def test_cut_closes_at_consent_schedule() -> None:
    """After a peers-only cut at 2 s, each pc reaches "closed" between 25 s and 45 s virtual."""
    net = SimNetwork("lan")
    net.cut(2.0, peers_only=True)

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        pcs = [RTCPeerConnection(RTCConfiguration(iceServers=net.ice_servers())) for _ in range(2)]
        closed: dict[int, float] = {}
        done = loop.create_future()
        for i, pc in enumerate(pcs):
            def on_state(i: int = i, pc: RTCPeerConnection = pc) -> None:
                if pc.connectionState == "closed" and i not in closed:
                    closed[i] = loop.time()
                    if len(closed) == 2 and not done.done():
                        done.set_result(None)
            pc.on("connectionstatechange", on_state)
        try:
            pcs[0].createDataChannel("x")
            with host_scope("caller"):
                await pcs[0].setLocalDescription(await pcs[0].createOffer())
            await pcs[1].setRemoteDescription(pcs[0].localDescription)
            with host_scope("callee"):
                await pcs[1].setLocalDescription(await pcs[1].createAnswer())
            await pcs[0].setRemoteDescription(pcs[1].localDescription)
            await asyncio.wait_for(done, 120)
        finally:
            for pc in pcs:
                await pc.close()
        return {"caller": closed[0], "callee": closed[1]}

    closed = run_sim(main, net)
    print("closed by consent expiry at (virtual s):", closed)
    for t in closed.values():
        assert 25 < t < 45


def _determinism_run() -> list[tuple[float, str, str, str]]:
    net = SimNetwork("nat", nat=("port-restricted", "symmetric"), latency_ms=15, jitter_ms=5, loss=0.05, seed=7, record_packets=True)
    run_sim(lambda: _pair(net, video=True, hold_s=2.0), net)
    return _packets(net)


def test_determinism_same_process_and_other_hashseed() -> None:
    """The same parameters and seed give identical (virtual time, packet) logs, also in another process."""
    first = _determinism_run()
    second = _determinism_run()
    assert len(first) > 100
    assert first == second
    code = (
        "import json, sys; sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r});"
        "import test_network as t; print(json.dumps(t._determinism_run()))"
    ).format(root=str(ROOT), tests=str(ROOT / "tests"))
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    other = [tuple(row) for row in json.loads(out.stdout.strip().splitlines()[-1])]
    assert other == first


def test_virtual_loop_installs_its_task_factory() -> None:
    """The loop's task factory is really installed, so tasks hash in creation order, not by address."""
    loop = network.VirtualLoop(SimNetwork())
    try:
        assert loop.get_task_factory() is network.VirtualLoop._sim_task_factory

        async def nothing() -> None:
            return None

        first = loop.create_task(nothing())
        second = loop.create_task(nothing())
        loop.run_until_complete(asyncio.gather(first, second))
        assert isinstance(first, network._SimTask)
        assert hash(second) == hash(first) + 1
    finally:
        loop.close()


def _turn_symmetric_frame() -> list[list[Any]]:
    result = rtclab.run("basic", network="sim", topology="nat", nat="symmetric", turn=True, seed=3)
    cols = ["t_ms", "actor", "kind", "name", "value", "prev", "ref", "detail"]
    return result.events[cols].astype(str).values.tolist()


def test_turn_behind_symmetric_nats_repeats_across_runs_and_processes() -> None:
    """With TURN behind symmetric NATs (srflx and relay candidates race) the whole frame repeats exactly."""
    first = _turn_symmetric_frame()
    assert any("relay" in row[7] for row in first)
    for _ in range(2):
        assert _turn_symmetric_frame() == first
    code = (
        "import json, sys; sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r});"
        "import test_network as t; print(json.dumps(t._turn_symmetric_frame()))"
    ).format(root=str(ROOT), tests=str(ROOT / "tests"))
    env = dict(os.environ, PYTHONHASHSEED="54321")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == first


def _is_original(owner: Any, name: str, original: Any) -> bool:
    if original is network._MISSING:
        return name not in owner.__dict__
    return owner.__dict__.get(name) is original


def _assert_all_patches_removed() -> None:
    assert not network.patches_installed()
    for owner, name, original in network.patched_internals():
        assert _is_original(owner, name, original), f"{owner}.{name} still patched"
    assert aioice.ice.get_host_addresses is network._orig_get_host_addresses
    assert aiortc.rtcrtpsender.time is time
    assert aiortc.mediastreams.time is time
    assert aiortc.rtcrtpreceiver.threading is threading
    assert aiortc.clock.current_datetime is network._orig_current_datetime


def test_internals_still_exist() -> None:
    """The aiortc/aioice internals the sim patches exist with the expected shapes."""
    assert list(inspect.signature(network._orig_get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]
    dtls = aiortc.rtcdtlstransport.RTCDtlsTransport
    assert list(inspect.signature(dtls._recv_next).parameters) == ["self"]
    assert list(inspect.signature(dtls._write_ssl).parameters) == ["self"]
    assert "DTLSv1_get_timeout" in inspect.getsource(dtls._recv_next)
    assert "self.__handshake_done" in inspect.getsource(dtls._recv_next)
    src = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.receive)
    assert "threading.Thread(" in src and "target=decoder_worker" in src and "args=(" in src
    assert "queue.Queue()" in inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__)
    assert list(inspect.signature(aiortc.rtcrtpreceiver.decoder_worker).parameters) == ["loop", "input_q", "output_q", "decode_error"]
    assert "run_in_executor" in inspect.getsource(aiortc.rtcrtpsender.RTCRtpSender)
    assert "time.time()" in inspect.getsource(aiortc.mediastreams.VideoStreamTrack.next_timestamp)
    assert "time.time()" in inspect.getsource(aioice.turn.TurnClientMixin.send_data)
    assert "random.random()" in inspect.getsource(aioice.ice.Connection.query_consent)
    for module in (aiortc.mediastreams, aiortc.rtcsctptransport, aiortc.rtcrtpsender, aiortc.rtcrtpreceiver, aioice.turn):
        assert module.time is time
    assert hasattr(asyncio.BaseEventLoop, "_run_once")
    loop = network.VirtualLoop()
    try:
        assert hasattr(loop, "_scheduled")
    finally:
        loop.close()
    network._check_internals()
    _assert_all_patches_removed()


def test_patches_removed_after_run_and_after_exception() -> None:
    """Patches are active only inside run_sim and are removed after success and after an exception."""
    seen: dict[str, Any] = {}

    async def main() -> str:
        seen["host"] = aioice.ice.get_host_addresses
        seen["time"] = aiortc.rtcrtpsender.time.time()
        return "ok"

    assert run_sim(main, SimNetwork()) == "ok"
    assert seen["host"] is not network._orig_get_host_addresses
    assert seen["time"] == network.SIM_EPOCH
    _assert_all_patches_removed()

    async def boom() -> None:
        await asyncio.sleep(3.0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_sim(boom, SimNetwork())
    _assert_all_patches_removed()


def test_stall_raises_simstalled() -> None:
    """A main() awaiting a future nobody resolves raises SimStalled instead of hanging."""

    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimStalled, match="stalled"):
        run_sim(main, SimNetwork())
    _assert_all_patches_removed()


def test_version_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_versions refuses aiortc/aioice versions the sim was not built for."""
    network.check_versions()
    monkeypatch.setattr(network, "SUPPORTED_AIORTC", "9.9.")
    with pytest.raises(SimVersionError, match="aiortc"):
        network.check_versions()
    with pytest.raises(SimVersionError):
        run_sim(lambda: asyncio.sleep(0), SimNetwork())
    _assert_all_patches_removed()


def test_sixty_second_video_call() -> None:
    """A 60 s virtual call with a video track runs to the end and delivers ~30 fps."""
    net = SimNetwork("lan", latency_ms=20.0)
    wall = time.perf_counter()
    res = run_sim(lambda: _pair(net, video=True, datachannel=False, hold_s=60.0), net)
    wall = time.perf_counter() - wall
    print(f"60 s virtual video call: {wall:.2f} s wall, {len(res['frames'])} frames decoded")
    assert res["outcome"] == {"caller": "connected", "callee": "connected"}
    assert res["t_end"] >= 60.0
    assert len(res["frames"]) > 1500


def _real_addresses() -> list[str]:
    return network._orig_get_host_addresses(use_ipv4=True, use_ipv6=False)


def test_real_network_unaffected_during_and_after_sim() -> None:
    """A sim in a worker thread leaves a real-network aiortc pair in the main thread working."""
    if not _real_addresses():
        pytest.skip("no non-loopback IPv4 interface: aioice excludes loopback, a real pair cannot connect")
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            net = SimNetwork("lan")
            box["sim"] = run_sim(lambda: _pair(net, video=True, datachannel=False, hold_s=20.0), net)
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        real_during = asyncio.run(_pair(None, ice_servers=[]))
    finally:
        thread.join(120)
    assert "error" not in box, box.get("error")
    assert box["sim"]["outcome"] == {"caller": "connected", "callee": "connected"}
    assert real_during["outcome"] == {"caller": "connected", "callee": "connected"}
    _assert_all_patches_removed()
    real_after = asyncio.run(_pair(None, ice_servers=[], video=True, datachannel=False, hold_s=0.3))
    assert real_after["outcome"] == {"caller": "connected", "callee": "connected"}
    assert real_after["frames"]


def test_packet_rows_recorded() -> None:
    """With record_packets the network writes "net" rows (sent/delivered) classified by protocol."""
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    net = SimNetwork("nat", record_packets=True)
    net.attach(lambda *a, **k: rows.append((a, k)))
    run_sim(lambda: _pair(net), net)
    net_rows = [r for r in rows if r[0][1] == "net"]
    assert {r[0][0] for r in net_rows} == {"network"}
    assert {"stun", "dtls"} <= {r[0][2] for r in net_rows}
    assert {"sent", "delivered"} <= {r[0][3] for r in net_rows}
    assert all(" -> " in r[1]["detail"] for r in net_rows)
    quiet = SimNetwork("lan")
    quiet_rows: list[Any] = []
    quiet.attach(lambda *a, **k: quiet_rows.append(a))
    run_sim(lambda: _pair(quiet), quiet)
    assert not [r for r in quiet_rows if r[1] == "net"]


def test_gathering_outside_host_scope_records_error() -> None:
    """Gathering without host_scope gives no host candidate and an error row, not a crash."""
    rows: list[Any] = []
    net = SimNetwork("lan", stun=False, turn=False)
    net.attach(lambda *a, **k: rows.append(a))

    async def main() -> int:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.createDataChannel("x")
            await pc.setLocalDescription(await pc.createOffer())
            return pc.localDescription.sdp.count("a=candidate")
        finally:
            await pc.close()

    assert run_sim(main, net) == 0
    assert any(r[1] == "error" and r[2] == "host_scope" for r in rows)


def test_network_reused_gives_same_run() -> None:
    """Running the same SimNetwork twice starts from a clean state and repeats the first run exactly."""
    net = SimNetwork("nat", record_packets=True, loss=0.02, seed=3)
    run_sim(lambda: _pair(net), net)
    first = _packets(net)
    run_sim(lambda: _pair(net), net)
    assert _packets(net) == first


def test_run_sim_refuses_running_loop() -> None:
    """run_sim called from inside a running loop fails clearly and leaves no patch behind."""

    async def outer() -> None:
        with pytest.raises(RuntimeError, match="worker thread"):
            run_sim(lambda: asyncio.sleep(0), SimNetwork())

    asyncio.run(outer())
    _assert_all_patches_removed()


def test_dtls_handshake_survives_heavy_loss() -> None:
    """With 30 % loss the DTLS handshake still completes on both sides (virtual-time retransmission)."""
    dtls_dropped = 0
    for seed in range(6):
        net = SimNetwork("lan", latency_ms=20, loss=0.3, seed=seed, record_packets=True, stun=False, turn=False)
        res = run_sim(lambda: _pair(net), net)
        assert res["outcome"] == {"caller": "connected", "callee": "connected"}, seed
        dtls_dropped += sum(1 for p in net.packet_log if p[1] == "dtls" and p[2] == "dropped")
    assert dtls_dropped > 0


def test_default_ice_servers_need_no_dns() -> None:
    """aiortc's default (hostname) STUN server fails fast in the sim with an error row, and the lan pair still connects."""
    rows: list[Any] = []
    net = SimNetwork("lan")
    net.attach(lambda *a, **k: rows.append(a))
    res = run_sim(lambda: _pair(net, ice_servers=[aiortc.RTCIceServer("stun:stun.example.invalid:3478")]), net)
    assert res["outcome"] == {"caller": "connected", "callee": "connected"}
    assert any(r[1] == "error" and r[2] == "dns" for r in rows)


def test_parallel_sims_in_threads_match_sequential() -> None:
    """Two sims running at once in worker threads give the same packet logs as run one after the other."""

    def one(seed: int) -> list[tuple[float, str, str, str]]:
        net = SimNetwork("nat", nat="symmetric", latency_ms=10, loss=0.05, seed=seed, record_packets=True)
        run_sim(lambda: _pair(net, video=True, hold_s=1.0), net)
        return _packets(net)

    sequential = [one(1), one(2)]
    results: dict[int, Any] = {}

    def worker(seed: int) -> None:
        try:
            results[seed] = one(seed)
        except BaseException as exc:  # pragma: no cover - reported below
            results[seed] = exc

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [results[1], results[2]] == sequential
    _assert_all_patches_removed()


@pytest.mark.parametrize("asked", ["-6", "6", "0"])
def test_sim_pins_the_vp8_encoder_speed(asked: str) -> None:
    """In a sim run aiortc's VP8 encoder keeps a fixed speed: in VP8 real-time mode
    a negative cpu-used is fixed, a positive one is libvpx's auto speed, which times
    each encode on the wall clock."""
    import aiortc.codecs.vpx as vpx

    from rtclab.network import SIM_VP8_SPEED, SimNetwork, run_sim

    seen: dict[str, object] = {}

    async def main() -> None:
        ctx = vpx.av.CodecContext.create("libvpx", "w")
        ctx.options = {"cpu-used": asked, "deadline": "realtime"}
        ctx.thread_count = 4
        seen["options"] = dict(ctx.options)
        seen["threads"] = ctx.thread_count

    run_sim(main, SimNetwork())
    assert seen["options"]["cpu-used"] == f"-{SIM_VP8_SPEED}" and seen["threads"] == 1
    real = vpx.av.CodecContext.create("libvpx", "w")  # outside a sim the encoder gets what aiortc asks
    real.options = {"cpu-used": asked, "deadline": "realtime"}
    assert dict(real.options)["cpu-used"] == asked
    import av

    assert vpx.av is av  # the patch is gone after the run


def test_equal_time_timers_fire_in_scheduling_order() -> None:
    """Timers due at the same virtual instant fire first-in, first-out, whatever else is on the heap.

    Plain asyncio compares timers by due time only, so ties leave the heap in an
    order set by its history (an extra or cancelled timer elsewhere reshuffles them).
    """
    fired: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        noise = []
        for i in range(40):
            loop.call_at(1.0, fired.append, i)
            noise.append(loop.call_at(0.5 + (i * 7919 % 13) / 100.0, lambda: None))
            if i % 3 == 0:
                noise[-1].cancel()
        await asyncio.sleep(2.0)

    run_sim(main, SimNetwork())
    assert fired == list(range(40))


def test_datagrams_on_one_link_arrive_in_order() -> None:
    """Without jitter a link is FIFO: every packet of a media burst is delivered in send order."""
    r = rtclab.run("basic", link_latency_ms=200, hold_s=1.0, record_packets=True)
    net = r.events[r.events.kind == "net"]
    sent = net[net.value == "sent"].set_index("ref")["detail"]
    delivered = net[net.value == "delivered"]
    assert len(delivered) > 50
    for detail, rows in delivered.groupby(delivered["ref"].map(sent)):
        order = [int(ref[1:]) for ref in rows["ref"]]
        assert order == sorted(order), f"reordered on {detail}"


def test_recording_packets_changes_nothing_else() -> None:
    """record_packets only adds "net" rows: every other row is the same, media times included."""
    plain = rtclab.run("basic", link_latency_ms=200).events
    logged = rtclab.run("basic", link_latency_ms=200, record_packets=True).events
    logged = logged[logged.kind != "net"].reset_index(drop=True)
    cols = ["t_ms", "actor", "kind", "name", "value", "prev", "detail"]
    assert logged[cols].astype(str).values.tolist() == plain[cols].astype(str).values.tolist()
    assert (plain.name == "first-frame").sum() == 2


def test_dtls_ignores_openssl_real_time_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handshake that takes over a second of real time (a loaded machine) gives the same run.

    OpenSSL retransmits a DTLS flight by itself once its timer, on the real clock,
    has run out; the sim fires that timer first and drops the flight, since it
    retransmits on virtual time itself.
    """
    quick = rtclab.run("basic", link_latency_ms=200, record_packets=True).events
    original = network._sim_recv_next
    slept: list[float] = []

    async def slow_recv_next(self: Any) -> None:
        if not slept and self._ssl is not None and self._ssl.DTLSv1_get_timeout() is not None:
            slept.append(1.05)
            time.sleep(1.05)  # OpenSSL's first timeout is 1 s of real time
        return await original(self)

    patched = [(o, n, slow_recv_next if r is original else r) for o, n, r in network._PATCHES]
    monkeypatch.setattr(network, "_PATCHES", patched)
    defused: list[int] = []
    original_defuse = network._defuse_openssl_timer

    async def counting_defuse(self: Any, state: Any) -> None:
        before = state.real_timeouts_defused
        await original_defuse(self, state)
        defused.append(state.real_timeouts_defused - before)

    monkeypatch.setattr(network, "_defuse_openssl_timer", counting_defuse)
    slow = rtclab.run("basic", link_latency_ms=200, record_packets=True).events
    assert slept and sum(defused) >= 1
    assert (slow.name == "dtls").sum() == (quick.name == "dtls").sum()
    cols = ["t_ms", "actor", "kind", "name", "value", "ref", "detail"]
    assert slow[cols].astype(str).values.tolist() == quick[cols].astype(str).values.tolist()


def test_lazy_rate_counter_counts_exactly_like_aiortcs() -> None:
    """The sim's RateCounter gives aiortc's rates and totals for any sequence of adds and reads."""
    import random

    import aiortc.rate

    original = network._ORIGINALS[(id(aiortc.rate), "RateCounter")]
    rng = random.Random(16)
    for window in (1, 7, 1000):
        a, b = original(window, 8000), network._LazyRateCounter(window, 8000)
        now = rng.randrange(10_000)
        for _ in range(3000):
            now += rng.choice([0, 0, 1, 2, 5, window - 1, window, window + 3, 3 * window])
            if rng.random() < 0.7:
                value = rng.randrange(1500)
                a.add(value, now)
                b.add(value, now)
            else:
                assert a.rate(now) == b.rate(now)
            if rng.random() < 0.01:
                a.reset()
                b.reset()
            assert (a._total.count, a._total.value, a._origin_ms, a._origin_index) == (
                b._total.count, b._total.value, b._origin_ms, b._origin_index)
        assert len(b._buckets) <= window


def test_rate_counter_is_patched_only_during_a_sim() -> None:
    """Video receivers made in a sim get the lazy counter; after the run aiortc's is back."""
    import aiortc.rate

    seen: list[type] = []

    async def main() -> None:
        seen.append(aiortc.rate.RemoteBitrateEstimator().incoming_bitrate.__class__)

    run_sim(main, SimNetwork())
    assert seen == [network._LazyRateCounter]
    assert aiortc.rate.RateCounter is network._ORIGINALS[(id(aiortc.rate), "RateCounter")]
    assert type(aiortc.rate.RemoteBitrateEstimator().incoming_bitrate) is aiortc.rate.RateCounter
    _assert_all_patches_removed()


def test_installed_versions_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_versions reads package metadata once per process, yet still compares every call."""
    network.check_versions()
    calls: list[str] = []
    monkeypatch.setattr(network.importlib.metadata, "version", lambda name: calls.append(name) or "0.0")
    network.check_versions()
    rtclab.run("basic", deadline_s=0.05)
    assert calls == []
    monkeypatch.setattr(network, "SUPPORTED_AIOICE", "9.9.")
    with pytest.raises(SimVersionError, match="aioice"):
        network.check_versions()


def test_sim_turns_the_vp8_temporal_denoiser_off() -> None:
    """aiortc asks libvpx for noise-sensitivity 4; in a sim run the encoder gets 0, elsewhere 4."""
    import aiortc.codecs.vpx as vpx

    seen: dict[str, str] = {}

    async def main() -> None:
        ctx = vpx.av.CodecContext.create("libvpx", "w")
        ctx.options = {"cpu-used": "-6", "noise-sensitivity": "4"}
        seen["sim"] = dict(ctx.options)["noise-sensitivity"]

    run_sim(main, SimNetwork())
    ctx = vpx.av.CodecContext.create("libvpx", "w")
    ctx.options = {"cpu-used": "-6", "noise-sensitivity": "4"}
    assert seen == {"sim": "0"} and dict(ctx.options)["noise-sensitivity"] == "4"


def test_cut_for_s_restores_the_path() -> None:
    """A cut with for_s drops packets between the hosts only in [at, at + for_s); bad durations are refused."""
    net = SimNetwork("lan")
    net.cut(2.0, peers_only=True, for_s=3.0)
    assert not net._is_cut(1.999, "caller", "callee")
    assert net._is_cut(2.0, "caller", "callee") and net._is_cut(4.999, "callee", "caller")
    assert not net._is_cut(5.0, "caller", "callee")
    assert not net._is_cut(3.0, "caller", None)  # peers_only: the server stays reachable
    with pytest.raises(ValueError, match="for_s > 0"):
        net.cut(1.0, for_s=0)


def test_restore_ends_only_the_cuts_still_open() -> None:
    """restore(t) heals every cut open at t; a cut that starts later, or already ended, is kept as it was."""
    net = SimNetwork("lan")
    net.cut(1.0, peers_only=True)  # open-ended: healed by restore
    net.cut(2.0, peers_only=True, for_s=1.0)  # over by 3 s: untouched
    net.cut(9.0, peers_only=True)  # starts after the restore: untouched
    net.restore(5.0)
    assert net._is_cut(4.999, "caller", "callee")
    assert not net._is_cut(5.0, "caller", "callee") and not net._is_cut(8.999, "callee", "caller")
    assert net._is_cut(9.0, "caller", "callee")
