"""Steps and essentials shared by several scenario modules."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..core import states

MACHINES = ("iceConnectionState", "connectionState")

#: JavaScript: both sides connected (``a``, ``b`` in scope).
JS_BOTH_CONNECTED = 'a.connectionState === "connected" && b.connectionState === "connected"'


def both_connected(a: Any, b: Any) -> bool:
    """Both sides' ``connectionState`` is ``connected``."""
    return bool(a.connectionState == "connected" and b.connectionState == "connected")


def machine_states(frame: pd.DataFrame, actors: tuple[str, ...] = ("caller", "callee"), machines: tuple[str, ...] = MACHINES, *, after: float | None = None) -> dict[str, list[str]]:
    """``{"<actor> <machine>": [values...]}`` for each actor and machine."""
    return {f"{actor} {m}": states(frame, actor, m, after=after) for actor in actors for m in machines}
