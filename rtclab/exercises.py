"""Fix-the-code exercises: one-line checks of a learner's apps.

Each main notebook (02 to 08) gives app code with a bug in a cell you edit,
then a one-line check such as ``rtclab.exercises.check_03(callee=my_callee)``.
A check plays your apps against the lesson's other side on the simulated
network, over several seeds, on a flat LAN and behind NATs, and prints a
short verdict: how each call ended, how many candidates were lost, and PASS
or FAIL. It is deterministic (same code, same verdict, on every machine), so
the notebooks store it. The general form is :func:`check`.

A call passes when it ends ``connected`` (media flowing both ways) and, for
the lessons about candidates, when none of the candidates the other side
sent was lost or refused: a LAN call that connects only because
peer-reflexive candidates rescued it still fails the check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import flows
from .flows import as_flow

if TYPE_CHECKING:  # pragma: no cover
    from .flows import AppCode, Flow

__all__ = [
    "Verdict",
    "check",
    "check_02",
    "check_03",
    "check_04",
    "check_05",
    "check_06",
    "check_07",
    "check_08",
]

SEEDS = 3
TOPOLOGIES = ("lan", "nat")


@dataclass(frozen=True)
class Verdict:
    """What :func:`check` found: PASS or FAIL, and each call's outcome.

    ``bool(verdict)`` is ``passed``; its text (``print(verdict)``, or the
    value of a notebook cell) is the short report.

    Attributes
    ----------
    passed
        Every call met the expectation.
    text
        The report: one line per topology, then the verdict.
    runs
        One row per call: ``topology``, ``seed``, ``outcome``, ``reason``,
        ``candidates_lost``, ``errors``, ``first_error`` (the first error
        row that points at your code, or ``""``), ``passed``.
    """

    passed: bool
    text: str
    runs: pd.DataFrame = field(repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def check(
    flow: str | Flow | None = None,
    *,
    caller: AppCode | None = None,
    callee: AppCode | None = None,
    expect: str = "connected",
    lost_ok: bool = False,
    seeds: int = SEEDS,
    topologies: tuple[str, ...] = TOPOLOGIES,
    title: str | None = None,
    **params: Any,
) -> Verdict:
    """Play a flow over several seeds on a LAN and behind NATs; PASS if every call ends as expected.

    Parameters
    ----------
    flow, caller, callee
        What to play, as for :func:`rtclab.run`: a name, a
        :class:`rtclab.Flow`, or your two app functions.
    expect
        The outcome every call must have (``"connected"``: connected with
        media flowing both ways, or the flow's ``media=False`` variant).
    lost_ok
        With ``expect="connected"``, a call also fails when a candidate the
        other side sent was lost (never added) or refused, unless this is
        ``True``.
    seeds
        Calls per topology (seeds ``0 .. seeds-1``).
    topologies
        Which of ``"lan"`` and ``"nat"`` to play on.
    title
        The report's first line (default: the flow's name).
    **params
        Any other run parameter (``signaling_latency_ms``, ``reorder``...).

    Returns
    -------
    Verdict
        Truthy when every call passed; shows the report in a notebook.

    Examples
    --------
    >>> import rtclab
    >>> v = rtclab.check("basic", seeds=1)
    >>> bool(v)
    True
    >>> print(v)  # doctest: +NORMALIZE_WHITESPACE
    basic: 1 seed on lan and nat, expecting connected, no candidate lost
      lan: connected 1/1
      nat: connected 1/1
    PASS: every call connected, no candidate lost
    """
    from .lab import run

    spec = as_flow(flow, caller=caller, callee=callee)
    strict = expect == "connected" and not lost_ok
    rows: list[dict[str, Any]] = []
    for topology in topologies:
        for seed in range(int(seeds)):
            r = run(spec, seed=seed, topology=topology, **params)
            m = r.metrics
            lost = int(m["candidates_lost"]) + int(m["candidates_rejected"])
            ok = r.outcome == expect and not (strict and lost)
            yours = r.events[(r.events["kind"] == "error") & r.events["detail"].str.contains("(at ", regex=False)]
            first = "" if yours.empty else f"{yours['actor'].iloc[0]} {yours['value'].iloc[0]}: {yours['detail'].iloc[0]}"
            rows.append({"topology": topology, "seed": seed, "outcome": r.outcome, "reason": r.reason,
                         "candidates_lost": lost, "errors": int(m["errors"]), "first_error": first, "passed": ok})
    df = pd.DataFrame(rows)
    want = f"expecting {expect}" + (", no candidate lost" if strict else "")
    n = int(seeds)
    lines = [f"{title or spec.name}: {n} seed{'s' if n != 1 else ''} on {' and '.join(topologies)}, {want}"]
    for topology in topologies:
        part = df[df["topology"] == topology]
        counts = Counter(part["outcome"])
        text = ", ".join(f"{o} {c}/{len(part)}" for o, c in sorted(counts.items(), key=lambda oc: (-oc[1], oc[0])))
        lost = int(part["candidates_lost"].sum())
        if lost:
            text += f"; {lost} candidate{'s' if lost != 1 else ''} lost or refused" + ("" if strict else " (not counted)")
        lines.append(f"  {topology}: {text}")
    passed = bool(df["passed"].all())
    if passed:
        lines.append(f"PASS: every call {expect}" + (", no candidate lost" if strict else ""))
    else:
        bad = df[~df["passed"]]
        why = []
        wrong = bad[bad["outcome"] != expect]
        if len(wrong):
            why.append(f"{len(wrong)} of {len(df)} calls did not end {expect}")
        lossy = bad[(bad["outcome"] == expect) & (bad["candidates_lost"] > 0)]
        if len(lossy):
            why.append(f"{len(lossy)} {expect} call{'s' if len(lossy) != 1 else ''} lost candidates on the way")
        lines.append("FAIL: " + "; ".join(why))
        raised = bad[bad["first_error"] != ""]
        if len(raised):
            lines.append(f"first error in your code: {raised['first_error'].iloc[0]}")
    return Verdict(passed, "\n".join(lines), df)


# -- the course's exercises -----------------------------------------------------------------


def check_02(caller: AppCode) -> Verdict:
    """02 · Offer after your tracks: your caller against the textbook callee.

    Passes when every call connects with media. The given caller makes its
    offer before adding its camera; the fix is to offer in the
    ``negotiationneeded`` handler.

    Examples
    --------
    >>> import rtclab
    >>> bool(rtclab.exercises.check_02(rtclab.flows.basic_caller))
    True
    """
    return check(caller=caller, callee=flows.basic_callee, title="02 · your caller + the textbook callee")


def check_03(callee: AppCode) -> Verdict:
    """03 · The timing trap: the textbook caller against your callee, which answers on click.

    Passes when every call connects and no candidate is lost or refused,
    with the user thinking 1 s before clicking *Answer*. The given callee
    creates its peer connection on the click and fails on every candidate
    that arrives before; the fix keeps them until there is a peer
    connection with a remote description to add them to.

    Examples
    --------
    >>> import rtclab
    >>> bool(rtclab.exercises.check_03(rtclab.FLOWS["queue-on-click"].callee))  # doctest: +SKIP
    True
    """
    return check(caller=flows.basic_caller, callee=callee, title="03 · the textbook caller + your callee")


def check_04(callee: AppCode) -> Verdict:
    """04 · Works on my machine: the textbook caller against your callee, on a LAN and behind NATs.

    Passes when every call connects and no candidate is lost. The given
    callee drops the caller's candidates: on a flat LAN peer-reflexive
    candidates still connect it, behind NATs nothing does.

    Examples
    --------
    >>> import rtclab
    >>> bool(rtclab.exercises.check_04(rtclab.flows.basic_callee))
    True
    """
    return check(caller=flows.basic_caller, callee=callee, title="04 · the textbook caller + your callee")


def check_05(callee: AppCode) -> Verdict:
    """05 · Counter-offer: the counteroffer caller against your callee, on a signaling path that reorders.

    Your callee must speak the ``counteroffer`` caller's protocol: answer at
    once, and send ``{"type": "call-accepted"}`` when the user answers (the
    caller's camera is gated until then). Messages are jittered (40 ms) and
    reordered (30 %), so candidates can overtake the offer. Passes when every
    call connects with none lost.

    Examples
    --------
    >>> import rtclab
    >>> bool(rtclab.exercises.check_05(rtclab.flows.counteroffer_callee))
    True
    """
    return check(caller=flows.counteroffer_caller, callee=callee, jitter_ms=40.0, reorder=0.3,
                 title="05 · the counteroffer caller + your callee, reordering signaling")


def check_06(caller: AppCode) -> Verdict:
    """06 · Vanilla ICE: your non-trickle caller against the vanilla callee.

    Passes when every call connects with none lost. The given caller sends
    its offer before gathering is complete, so the offer carries no
    candidate at all.

    Examples
    --------
    >>> import rtclab
    >>> bool(rtclab.exercises.check_06(rtclab.flows.vanilla_caller))
    True
    """
    return check(caller=caller, callee=flows.vanilla_callee, title="06 · your vanilla caller + the vanilla callee")


def check_07(app: AppCode) -> Verdict:
    """07 · Glare: your app on both sides, both users clicking *Call* at once.

    The callee's side is the polite peer (``app.actor == "callee"``).
    Passes when every call connects (candidates refused for an ignored
    offer are expected, so they do not count).

    Examples
    --------
    >>> import rtclab
    >>> bool(rtclab.exercises.check_07(rtclab.flows.perfect_app))
    True
    """
    # the impolite side ignores the polite side's colliding offer, and with it that offer's
    # candidates: refused candidates are part of perfect negotiation, not a bug
    return check(caller=app, callee=app, lost_ok=True, title="07 · your app on both sides, both calling at once")


def check_08(caller: AppCode, callee: AppCode) -> Verdict:
    """08 · Timeouts: your caller and callee, with a 40-second deadline.

    Passes when every call connects. The given apps never send a candidate,
    so ICE has no pair to check and the calls end at the deadline.

    Examples
    --------
    >>> import rtclab
    >>> bool(rtclab.exercises.check_08(rtclab.flows.basic_caller, rtclab.flows.basic_callee))
    True
    """
    return check(caller=caller, callee=callee, deadline_s=40.0, title="08 · your caller + your callee, 40 s deadline")
