"""One typed model of a run's parameters: name, unit, range and meaning in one place.

:class:`RunParams` is a frozen dataclass; each field carries a :class:`Param`
in its metadata saying what it means, its unit, the values it accepts and the
command-line option that sets it. Everything that takes run parameters checks
them here:

* :func:`rtclab.run`, :func:`rtclab.arun` and :func:`rtclab.sweep` (users keep
  passing keywords: ``rtclab.run("basic", signaling_latency_ms=50)``);
* the command line (``python -m rtclab run --latency 50``), whose options and
  help text are generated from the fields;
* the call panel's controls (:class:`rtclab.widgets.CallPanel`), whose slider
  limits come from the same ranges.

A bad value raises :class:`ValueError` (or :class:`TypeError` for an unknown
name) naming the parameter, its unit and its range.

Examples
--------
>>> from rtclab.params import RunParams
>>> RunParams(signaling_latency_ms=50).signaling_latency_ms
50
>>> RunParams(loss=2)
Traceback (most recent call last):
...
ValueError: loss must be a probability in [0, 1], got 2
>>> print(RunParams.describe("jitter_ms"))
jitter_ms: random extra signaling delay per message, uniform in [0, jitter] (milliseconds, in [0, 3600000]; default 0.0)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from .media import SIM_VIDEO

__all__ = ["MAX_RUNS", "MAX_TRIALS", "MAX_WORKERS", "NAT_TYPES", "Param", "RunParams", "check_sweep"]

NAT_TYPES = ("full-cone", "restricted", "port-restricted", "symmetric")

#: The longest deadline (seconds, virtual on ``sim``): one hour is far past every ICE timer.
MAX_DEADLINE_S = 3600.0
#: The longest delay any millisecond parameter accepts: one hour.
MAX_MS = 3_600_000.0
#: Trials per flow and grid point that :func:`rtclab.sweep` accepts.
MAX_TRIALS = 10_000
#: Runs in one sweep (flows x grid points x trials).
MAX_RUNS = 100_000
#: Worker processes of one sweep.
MAX_WORKERS = 64
#: Default deadline per network when ``deadline_s`` is left at ``None``.
DEADLINE_SIM_S = 90.0
DEADLINE_REAL_S = 10.0

_UNITS = {"ms": "milliseconds", "s": "seconds", "p": "probability", "": ""}


@dataclass(frozen=True)
class Param:
    """What one run parameter means and which values it accepts.

    Attributes
    ----------
    help
        The meaning, in a few words.
    unit
        ``"ms"``, ``"s"``, ``"p"`` (a probability) or ``""``.
    kind
        ``"int"``, ``"float"``, ``"bool"``, ``"choice"``, ``"nat"`` or ``"size"``
        (a ``(width, height)`` pair).
    low, high
        The accepted range for numbers (both inclusive unless ``low_open``).
    low_open
        ``True`` when ``low`` itself is refused (``deadline_s > 0``).
    choices
        The accepted words for ``kind="choice"``.
    none
        What ``None`` means, or ``""`` when ``None`` is refused.
    flag
        The command-line option (``None``: not on the command line).
    """

    help: str
    kind: str = "float"
    unit: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    none: str = ""
    flag: str | None = None

    def range_text(self, *, with_none: bool = True) -> str:
        """The accepted values in words: ``"milliseconds, in [0, 3600000]"``."""
        if self.kind in ("choice", "nat"):
            text = "one of " + ", ".join(self.choices)
            if self.kind == "nat":
                text += " (or a (caller, callee) pair)"
        elif self.kind == "bool":
            text = "True or False"
        elif self.kind == "size":
            text = f"a (width, height) pair of even pixel counts in [{_num(self.low)}, {_num(self.high)}]"
        else:
            lo = "(" if self.low_open else "["
            text = f"{lo}{_num(self.low)}, {_num(self.high)}]"
            if self.kind == "int":
                text = "an integer in " + text
            elif self.unit == "p":
                text = "a probability in " + text
            else:
                text = f"{_UNITS[self.unit]}, in {text}"
        if self.none and with_none:
            text += f"; None: {self.none}"
        return text

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it is accepted (pairs become tuples), else a :class:`ValueError` naming ``name``."""
        if value is None:
            if self.none:
                return None
            raise ValueError(f"{name} must not be None: {self.range_text()}")
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise ValueError(f"{name} must be {' or '.join(repr(c) for c in self.choices)}, got {value!r}")
        if self.kind == "nat":
            types = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (tuple, list)) else (value,)
            for t in types:
                if t not in self.choices:
                    raise ValueError(f"{name} must be one of {self.choices} (or a (caller, callee) pair), got {t!r}")
            if not isinstance(value, str):
                if len(types) != 2:
                    raise ValueError(f"{name} as a pair must have two entries: (caller, callee), got {value!r}")
                return types
            return value
        if self.kind == "size":
            ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) and self.low <= v <= self.high and v % 2 == 0  # type: ignore[operator]
                for v in value)
            if not ok:
                raise ValueError(f"{name} must be a (width, height) pair of even pixel counts in [{_num(self.low)}, "
                                 f"{_num(self.high)}], e.g. (320, 240); got {value!r}")
            return (int(value[0]), int(value[1]))
        if self.kind == "bool":
            if isinstance(value, bool) or type(value).__name__ == "bool_":
                return bool(value)
            raise ValueError(f"{name} must be True or False, got {value!r}")
        integral = isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"
        real = isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"
        ok = integral if self.kind == "int" else real
        if ok and math.isfinite(float(value)):
            v = float(value)
            above = v > self.low if self.low_open else v >= self.low  # type: ignore[operator]
            if above and v <= self.high:  # type: ignore[operator]
                return int(value) if self.kind == "int" else value
        what = "an integer" if self.kind == "int" else "a probability" if self.unit == "p" else f"a number of {_UNITS[self.unit]}"
        lo = "(" if self.low_open else "["
        extra = f" or None ({self.none})" if self.none else ""
        raise ValueError(f"{name} must be {what} in {lo}{_num(self.low)}, {_num(self.high)}]{extra}, got {value!r}")


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else repr(x)


def _p(default: Any, **spec: Any) -> Any:
    return field(default=default, metadata={"param": Param(**spec)})


def _ms(default: Any, help: str, flag: str | None, **extra: Any) -> Any:
    return _p(default, help=help, unit="ms", low=0.0, high=MAX_MS, flag=flag, **extra)


def _prob(default: float, help: str, flag: str | None) -> Any:
    return _p(default, help=help, unit="p", low=0.0, high=1.0, flag=flag)


@dataclass(frozen=True)
class RunParams:
    """Every parameter of one run, with its unit, range and meaning (frozen).

    Build it with keywords (``RunParams(loss=0.1)``) or from a dict
    (:meth:`from_dict`); an out-of-range value raises :class:`ValueError`
    naming the field and its range. :meth:`describe` prints the fields.

    Examples
    --------
    >>> p = RunParams.from_dict({"network": "real"})
    >>> p.resolved().deadline_s
    10.0
    >>> RunParams.param("loss").range_text()
    'a probability in [0, 1]'
    """

    seed: int = _p(0, help="random seed of the run (signaling delays, losses, the simulated network)",
                   kind="int", low=0, high=2**32 - 1, flag="--seed")
    network: str = _p("sim", help="sim: simulated network on a virtual clock (deterministic); real: UDP sockets on this machine",
                      kind="choice", choices=("sim", "real"), flag="--network")
    topology: str = _p("lan", help="sim: both hosts on one LAN, or each behind its own NAT",
                       kind="choice", choices=("lan", "nat"), flag="--topology")
    nat: Any = _p("port-restricted", help="sim: NAT type in front of each host (topology nat)",
                  kind="nat", choices=NAT_TYPES, flag="--nat")
    stun: bool = _p(True, help="sim: offer the STUN server to both peers", kind="bool")
    turn: bool = _p(False, help="sim: offer the TURN server to both peers", kind="bool")
    link_latency_ms: float = _ms(5.0, "sim: one-way network latency of each link", "--link-latency")
    link_loss: float = _prob(0.0, "sim: probability a packet is lost on a link", "--link-loss")
    signaling_latency_ms: float = _ms(20.0, "one-way delay of each signaling message", "--latency")
    jitter_ms: float = _ms(0.0, "random extra signaling delay per message, uniform in [0, jitter]", "--jitter")
    reorder: float = _prob(0.0, "probability a signaling message is held back (later ones may overtake it)", "--reorder")
    loss: float = _prob(0.0, "probability a signaling message is lost", "--loss")
    duplicate: float = _prob(0.0, "probability a signaling message is delivered twice", "--duplicate")
    answer_delay_ms: float | None = _ms(1000.0, "the callee's think time before clicking Answer", "--answer-delay",
                                        none="wait for a real click (real network, call panel)")
    decision: str = _p("accept", help="what the callee's user chooses when the phone rings (apps that call "
                       "app.user.decide(), such as counteroffer); decline ends the call unanswered",
                       kind="choice", choices=("accept", "decline"), flag="--decision")
    candidate_interval_ms: float = _ms(5.0, "pause between two emitted ICE candidates (browser pacing)", "--candidate-interval")
    deadline_s: float | None = _p(None, help="end the run after this long (virtual seconds on sim)", unit="s",
                                  low=0.0, high=MAX_DEADLINE_S, low_open=True, flag="--deadline",
                                  none=f"{DEADLINE_SIM_S:g} s on sim, {DEADLINE_REAL_S:g} s on real")
    record_packets: bool = _p(False, help="sim: record every packet as a net row", kind="bool")
    emulate: bool = _p(True, help="emulate the browser where aiortc differs (trickle, operations chain, rollback...)", kind="bool")
    hold_s: float = _p(0.0, help="keep the call up this long after it connected", unit="s", low=0.0, high=MAX_DEADLINE_S)
    cut_at_s: float | None = _p(None, help="sim: cut the media path between the hosts at this time", unit="s",
                                low=0.0, high=MAX_DEADLINE_S, none="never cut")
    cut_for_s: float | None = _p(None, help="sim: how long the cut lasts before the path heals (needs cut_at_s)", unit="s",
                                 low=0.0, high=MAX_DEADLINE_S, low_open=True, none="the cut lasts to the end")
    sim_video: tuple[int, int] = _p(SIM_VIDEO, help="sim: the camera's (width, height) in pixels (the real network's is 320x240)",
                                    kind="size", low=2, high=4096)
    interface: str = _p("loopback", help="real: gather on 127.0.0.1 only (works offline, nothing leaves this machine) "
                        "or on the machine's network addresses (to call another machine)",
                        kind="choice", choices=("loopback", "lan"), flag="--interface")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = f.metadata["param"].check(f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        if self.answer_delay_ms is None and self.network != "real":
            raise ValueError("answer_delay_ms=None (wait for a real click) needs network='real'")
        if self.cut_at_s is not None and self.network != "sim":
            raise ValueError("cut_at_s (cutting the media path) needs network='sim'")
        if self.cut_for_s is not None and self.cut_at_s is None:
            raise ValueError("cut_for_s (how long the path stays cut) needs cut_at_s (when it is cut)")
        if self.interface != "loopback" and self.network != "real":
            raise ValueError(f"interface={self.interface!r} needs network='real' (the sim has its own addresses)")

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> RunParams:
        """Build from keywords; unknown names raise :class:`TypeError` listing the known ones."""
        known = cls.names()
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise TypeError(f"unknown parameter(s) {unknown} for run(); known: {sorted(known)}")
        return cls(**params)

    @classmethod
    def names(cls) -> list[str]:
        """The field names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def param(cls, name: str) -> Param:
        """The :class:`Param` of field ``name``."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.metadata["param"]  # type: ignore[no-any-return]
        raise KeyError(f"no run parameter {name!r}; known: {sorted(cls.names())}")

    @classmethod
    def describe(cls, name: str | None = None) -> str:
        """One line per field (or for ``name``): meaning, unit and range, default."""
        lines = []
        for f in dataclasses.fields(cls):
            if name is not None and f.name != name:
                continue
            spec: Param = f.metadata["param"]
            lines.append(f"{f.name}: {spec.help} ({spec.range_text()}; default {f.default!r})")
        return "\n".join(lines)

    def resolved(self) -> RunParams:
        """A copy with ``deadline_s`` filled in from the network's default."""
        if self.deadline_s is not None:
            return self
        return dataclasses.replace(self, deadline_s=DEADLINE_SIM_S if self.network == "sim" else DEADLINE_REAL_S)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what :attr:`rtclab.Run.params` holds)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def check_sweep(*, trials: Any, workers: Any, runs: int | None = None) -> None:
    """Check a sweep's size: ``trials`` in [1, MAX_TRIALS], ``workers`` None or in [1, MAX_WORKERS], ``runs`` <= MAX_RUNS.

    Examples
    --------
    >>> check_sweep(trials=0, workers=None)
    Traceback (most recent call last):
    ...
    ValueError: trials must be an integer in [1, 10000] (trials per flow and grid point), got 0
    """
    if not _is_int(trials) or not 1 <= trials <= MAX_TRIALS:
        raise ValueError(f"trials must be an integer in [1, {MAX_TRIALS}] (trials per flow and grid point), got {trials!r}")
    if workers is not None and (not _is_int(workers) or not 1 <= workers <= MAX_WORKERS):
        raise ValueError(f"workers must be an integer in [1, {MAX_WORKERS}] (worker processes) or None, got {workers!r}")
    if runs is not None and runs > MAX_RUNS:
        raise ValueError(f"a sweep runs at most {MAX_RUNS} calls (flows x grid points x trials); this one would run {runs}")


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
