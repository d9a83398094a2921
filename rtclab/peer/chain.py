"""The operations chain (``chain``): API calls run one after another, in call order.

What the browser does
    W3C webrtc-pc "chain an operation": ``createOffer``, ``createAnswer``,
    ``setLocalDescription``, ``setRemoteDescription``, ``addIceCandidate``
    and ``replaceTrack`` are queued on the connection's operations chain; an
    ``addIceCandidate`` issued while ``setRemoteDescription`` is still pending
    runs after it and succeeds (as in Chromium 156).
What aiortc 1.16 does
    Each call runs at once, so a candidate added while the remote description
    is being applied fails or is dropped.
What rtclab emulates
    :meth:`ChainMixin._op` queues each call behind the previous one (when
    ``chain`` is on), waits for aiortc's background gathering (aiortc cannot
    take the next call while it gathers), records the call as an ``ok`` or
    ``error`` ``call`` row with the browser's error name, and re-checks
    ``negotiationneeded`` when the chain empties. Switch:
    ``Peer(chain=False)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..network import host_scope
from .errors import InvalidStateError, error_name


class ChainMixin:
    """Mixed into :class:`~rtclab.peer.Peer`: every API call runs through :meth:`_op`."""

    async def _op(self, name: str, fn: Callable[[], Awaitable[Any]], *, ref: str = "", ok_detail: Callable[[Any], str] | None = None) -> Any:
        loop = asyncio.get_running_loop()
        prev = self._tail if self.chain else None
        done: asyncio.Future[None] = loop.create_future()
        if self.chain:
            self._tail = done
        self._pending_ops += 1
        try:
            if prev is not None and not prev.done():
                await asyncio.shield(prev)
            if self._closed:
                raise InvalidStateError(f"Failed to execute '{name}': The RTCPeerConnection's signalingState is 'closed'.")
            busy = self._gathering
            if busy is not None and not busy.done():
                await asyncio.wait([busy])  # aiortc cannot take the next call while it gathers
            with host_scope(self.host):
                result = await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            exc = self._translate(name, exc)
            self._rec("call", name, "error", ref=ref, detail=f"{error_name(exc)}: {exc}")
            self._error(name, exc, ref=ref)
            raise exc from None
        else:
            self._rec("call", name, "ok", ref=ref, detail=ok_detail(result) if ok_detail else "")
            return result
        finally:
            self._pending_ops -= 1
            if not done.done():
                done.set_result(None)
            if self._pending_ops == 0:
                self._check_negotiation_needed()
