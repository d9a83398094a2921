"""Real-network calls gather on loopback by default (rtclab.interfaces), the LAN only on request."""

from __future__ import annotations

import threading

import aioice.ice
import pytest

import rtclab
from rtclab import interfaces
from rtclab.__main__ import main as cli_main


def _host_addresses(run: rtclab.Run) -> set[str]:
    ev = run.events
    gathered = ev[(ev["kind"] == "ice") & (ev["name"] == "candidate") & (ev["value"] == "gathered")]
    return {d.split()[4] for d in gathered["detail"] if " typ host" in d}


def test_real_run_gathers_loopback_only_by_default() -> None:
    """network='real' connects with host candidates on 127.0.0.1 and nothing else."""
    r = rtclab.run("basic", network="real")
    assert r.outcome == "connected", r.reason
    assert r.params["interface"] == "loopback"
    assert _host_addresses(r) == {"127.0.0.1"}


def test_the_loopback_scope_ends_with_the_run() -> None:
    """After a real run, aioice gathers as it always does here (it never offers 127.0.0.1 by itself)."""
    rtclab.run("basic", network="real")
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)
    assert interfaces.host_addresses(use_ipv4=True, use_ipv6=False) == aioice.ice.get_host_addresses(True, False)


def test_the_scope_is_per_context_not_per_process() -> None:
    """Inside gathering('loopback') this thread sees 127.0.0.1 only; another thread meanwhile sees aioice's own answer."""
    seen: dict[str, list[str]] = {}
    inside = threading.Event()
    done = threading.Event()

    def other() -> None:
        inside.wait(10)
        seen["other"] = aioice.ice.get_host_addresses(True, False)
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with interfaces.gathering("loopback"):
        seen["inside"] = aioice.ice.get_host_addresses(True, True)
        inside.set()
        done.wait(10)
    t.join(10)
    assert seen["inside"] == ["127.0.0.1"]
    assert "127.0.0.1" not in seen["other"]


def test_lan_interface_gathers_the_machine_addresses() -> None:
    """interface='lan' gathers what aioice finds (no loopback) and connects over it."""
    found = interfaces._original(True, True)
    if not found:
        pytest.skip("this machine has no non-loopback address")
    r = rtclab.run("basic", network="real", interface="lan")
    assert r.outcome == "connected", r.reason
    addresses = _host_addresses(r)
    assert addresses and "127.0.0.1" not in addresses and addresses <= set(found)


def test_no_usable_address_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no LAN address, interface='lan' ends at once with outcome error and says what to do."""
    monkeypatch.setattr(interfaces, "_original", lambda use_ipv4, use_ipv6: [])
    with pytest.raises(interfaces.NoUsableAddress, match="no network address other than loopback"):
        interfaces.usable_addresses("lan")
    r = rtclab.run("basic", network="real", interface="lan")
    assert r.outcome == "error"
    assert "NoUsableAddress" in r.reason and "use interface='loopback'" in r.reason
    assert rtclab.run("basic", network="real").outcome == "connected"  # loopback needs no LAN


def test_interface_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    """interface needs network='real' and one of its two values, in run() and on the command line."""
    with pytest.raises(ValueError, match="interface='lan' needs network='real'"):
        rtclab.run("basic", interface="lan")
    with pytest.raises(ValueError, match="interface must be 'loopback' or 'lan'"):
        rtclab.run("basic", network="real", interface="wifi")
    with pytest.raises(SystemExit) as info:
        cli_main(["run", "basic", "--network", "real", "--interface", "wifi"])
    assert info.value.code == 2
    assert "argument --interface: interface must be 'loopback' or 'lan'" in capsys.readouterr().err
