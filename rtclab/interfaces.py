"""Which addresses a call on the real network gathers: loopback by default, the LAN on request.

aioice (aiortc's ICE) gathers a host candidate on every network address of
the machine *except* loopback. On a workshop laptop with Wi-Fi off that is no
address at all, so a ``network="real"`` call would never connect; and on any
machine the call's packets would go to its LAN address. rtclab therefore
gathers on ``127.0.0.1`` only (``interface="loopback"``, the default): it
works offline and nothing leaves the machine. ``interface="lan"`` gathers
what aioice normally does, for two machines meant to call each other.

How: :func:`gathering` sets a context variable for the duration of one real
run; ``aioice.ice.get_host_addresses`` is wrapped once (when this module is
imported) by a dispatcher that returns aioice's own answer unless that
variable is set in the calling context. Outside a run, in other threads and in
other tasks (a browser test, the workshop server, a learner's own aiortc
code) nothing changes; :func:`uninstall` puts aioice's function back.

Examples
--------
>>> from rtclab.interfaces import gathering, host_addresses
>>> with gathering("loopback"):
...     host_addresses(use_ipv4=True, use_ipv6=True)
['127.0.0.1']
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
from collections.abc import Iterator
import aioice.ice

__all__ = ["INTERFACES", "NoUsableAddress", "gathering", "host_addresses", "uninstall", "usable_addresses"]

INTERFACES = ("loopback", "lan")

_scope: contextvars.ContextVar[str | None] = contextvars.ContextVar("rtclab_interface", default=None)
_original = aioice.ice.get_host_addresses


class NoUsableAddress(RuntimeError):
    """No address to gather a candidate on: the call could never connect."""


def _dispatch(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice's ``get_host_addresses``, unless a real run in this context chose its interface."""
    interface = _scope.get()
    if interface == "loopback":
        return ["127.0.0.1"] if use_ipv4 else []
    return _original(use_ipv4, use_ipv6)


_dispatch._rtclab_interfaces = True  # type: ignore[attr-defined]


def _install() -> None:
    if not getattr(aioice.ice.get_host_addresses, "_rtclab_interfaces", False) and aioice.ice.get_host_addresses is _original:
        aioice.ice.get_host_addresses = _dispatch


def uninstall() -> None:
    """Give aioice its own ``get_host_addresses`` back (if the dispatcher is still in place)."""
    if aioice.ice.get_host_addresses is _dispatch:
        aioice.ice.get_host_addresses = _original


def host_addresses(*, use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    """The addresses a peer created in this context would gather host candidates on."""
    return _dispatch(use_ipv4, use_ipv6)


def usable_addresses(interface: str) -> list[str]:
    """The addresses ``interface`` offers on this machine, or :class:`NoUsableAddress` saying why none.

    Examples
    --------
    >>> usable_addresses("loopback")
    ['127.0.0.1']
    """
    if interface not in INTERFACES:
        raise ValueError(f"interface must be one of {INTERFACES}, got {interface!r}")
    if interface == "loopback":
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
        except OSError as exc:
            raise NoUsableAddress(f"interface='loopback': cannot open a UDP socket on 127.0.0.1 ({exc})") from None
        return ["127.0.0.1"]
    found = _original(True, True)
    if not found:
        raise NoUsableAddress(
            "interface='lan': this machine has no network address other than loopback (Wi-Fi and "
            "Ethernet off?), so no candidate can be gathered; use interface='loopback' (the default) "
            "to call within this machine"
        )
    return list(found)


@contextlib.contextmanager
def gathering(interface: str) -> Iterator[None]:
    """Within this block (and the tasks it starts), peers gather on ``interface`` only.

    ``"loopback"``: ``127.0.0.1``; ``"lan"``: what aioice gathers by itself.
    """
    if interface not in INTERFACES:
        raise ValueError(f"interface must be one of {INTERFACES}, got {interface!r}")
    _install()
    token = _scope.set(interface)
    try:
        yield
    finally:
        _scope.reset(token)


_install()  # before rtclab.network captures aioice's function: the sim then falls back to the dispatcher
