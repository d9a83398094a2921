"""The doctor: why a call failed (or nearly did), in the course's terms.

:func:`diagnose` reads an event frame — a :class:`rtclab.Run`, a frame, a
saved run, or a browser dump read by :func:`rtclab.load_trace` — and returns a
:class:`Diagnosis`: findings, most important first. Each finding has a code,
a title, a severity, an explanation in plain words, the evidence rows (a
sub-frame of the input) and the notebook that teaches it.

Only what the frame shows is reported. When a check needs something the trace
does not hold (browser dumps have no signaling messages; Chromium's
webrtc-internals does not log end-of-candidates...), the diagnosis says so in
``undecided`` instead of guessing.

The doctor reasons in browser terms (W3C, Chromium): ``iceConnectionState``
``connected`` and ``completed`` both count as connected, ``disconnected`` is
transient (a browser may recover, and Chromium reports ``failed`` about ten
seconds later if it does not), an ICE agent that was given no candidate at all
stays ``new``.

Severities
----------
``error``
    explains why this call failed, stalled or carried no media.
``warning``
    a defect that did not break this call but breaks others (on another
    network, with another timing), or slows it down.
``info``
    worth knowing; nothing to fix.

Codes
-----
========================================  =====================================  ==========================
code                                      what the frame shows                   notebook
========================================  =====================================  ==========================
``candidates-before-peer-connection``     candidates delivered before the app    ``03_timing_trap``
                                          created its peer connection (lost)
``candidates-before-remote-description``  ``addIceCandidate`` before              ``03_timing_trap``
                                          ``setRemoteDescription``:
                                          ``InvalidStateError``
``candidates-ignored``                    candidates delivered, never added      ``03_timing_trap``
``candidates-after-end``                  candidates that came after the         ``03_timing_trap``
                                          sender's end-of-candidates
``offer-before-tracks``                   an offer with no media section, tracks ``02_offer_after_tracks``
                                          added after it, never offered again
``glare``                                 both sides in ``have-local-offer`` at  ``07_glare``
                                          once, unresolved (``info`` when
                                          resolved)
``no-candidates``                         a side received no remote candidate    ``08_timeouts``
``no-end-of-candidates``                  candidates sent, end-of-candidates     ``08_timeouts``
                                          never
``needs-turn``                            every candidate arrived, ICE failed,   ``04_works_on_my_machine``
                                          NAT (srflx) on both sides, no relay
``renegotiation-after-answer``            most of answer-to-media is an          ``11_answering_the_call``
                                          offer/answer round after the click
``hangup-on-disconnected``                closed or hung up soon after           ``12_when_calls_break``
                                          ``disconnected``, before ``failed``
``swallowed-errors``                      errors the app caught and only logged  ``03_timing_trap``
``handler-errors``                        errors thrown out of the message       ``03_timing_trap``
                                          handler
``addicecandidate-failed``                other ``addIceCandidate`` failures     ``03_timing_trap``
``signaling-lost``                        signaling messages dropped or refused  ``03_timing_trap``
``api-error``                             another API call failed                ``01_anatomy``
``declined``                              the user declined: no media expected   ``13_call_control_privacy``
``no-media``                              connected, a track never got a frame   ``02_offer_after_tracks``
``ice-failed``                            ICE failed, nothing above explains it  ``08_timeouts``
``stalled``                               neither connected nor failed at the    ``08_timeouts``
                                          end, nothing above explains it
========================================  =====================================  ==========================
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Diagnosis", "Finding", "diagnose"]

SEVERITIES = ("error", "warning", "info")
SIDES = ("caller", "callee")
CONNECTED_ICE = ("connected", "completed")
#: Chromium 156: ``failed`` about 10 s after ``disconnected`` when the path stays cut (FACTS.md)
CHROMIUM_DISCONNECTED_TO_FAILED_MS = 10_000.0


@dataclass(frozen=True)
class Finding:
    """One thing the doctor found.

    Attributes
    ----------
    code
        A stable identifier such as ``candidates-before-peer-connection``.
    title
        One line.
    severity
        ``error``, ``warning`` or ``info`` (see the module docstring).
    explanation
        What happened and why it matters, in the course's words.
    evidence
        The rows of the input frame that show it.
    notebook
        The notebook that teaches it (``03_timing_trap``...).
    """

    code: str
    title: str
    severity: str
    explanation: str
    evidence: pd.DataFrame = field(repr=False, compare=False)
    notebook: str

    @property
    def t_ms(self) -> float:
        """Time of the first evidence row (``nan`` without evidence)."""
        return float(self.evidence["t_ms"].min()) if len(self.evidence) else math.nan

    def __str__(self) -> str:
        return "\n".join(self._lines(1))

    def _lines(self, n: int, *, rows: int = 6) -> list[str]:
        out = [f"{n}. [{self.severity}] {self.title} ({self.code})"]
        out += textwrap.wrap(self.explanation, width=96, initial_indent="   ", subsequent_indent="   ")
        ev = self.evidence
        if len(ev):
            out.append(f"   evidence: {len(ev)} row{'s' if len(ev) != 1 else ''}"
                       + (f", first {rows}:" if len(ev) > rows else ":"))
            for _, r in ev.head(rows).iterrows():
                what = " ".join(str(r[c]) for c in ("actor", "kind", "name", "value") if str(r[c]))
                extra = str(r["ref"]) if str(r["ref"]) else ""
                detail = str(r["detail"])[:60]
                tail = " ".join(x for x in (extra, f"({detail})" if detail else "") if x)
                out.append(f"     {float(r['t_ms']):>10.1f} ms  {what}" + (f"  {tail}" if tail else ""))
        out.append(f"   learn more: notebooks/{self.notebook}.ipynb")
        return out


@dataclass
class Diagnosis:
    """The doctor's report on one trace: findings, most important first.

    Attributes
    ----------
    findings
        Sorted by severity, then by the time of their first evidence row.
    outcome
        ``connected``, ``failed``, ``stalled`` or ``unknown``: what the state
        rows show (both sides' ``connectionState``).
    source
        ``rtclab``, ``webrtc-internals``, ``rtcstats`` or ``frame``.
    lacks
        What the trace cannot show (from :func:`rtclab.load_trace`).
    undecided
        ``(code, why)`` for checks the trace could not decide.
    """

    findings: list[Finding]
    outcome: str
    source: str = "frame"
    lacks: list[str] = field(default_factory=list)
    undecided: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """``True`` when no finding is an error or a warning."""
        return not any(f.severity in ("error", "warning") for f in self.findings)

    @property
    def codes(self) -> list[str]:
        """The findings' codes, in order."""
        return [f.code for f in self.findings]

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __getitem__(self, key: int | str) -> Finding:
        """A finding by position or by code."""
        if isinstance(key, str):
            for f in self.findings:
                if f.code == key:
                    return f
            raise KeyError(f"no finding {key!r}; found: {self.codes}")
        return self.findings[key]

    def table(self) -> pd.DataFrame:
        """One row per finding: severity, code, title, notebook, evidence rows, first time."""
        return pd.DataFrame(
            [(f.severity, f.code, f.title, f.notebook, len(f.evidence), f.t_ms) for f in self.findings],
            columns=["severity", "code", "title", "notebook", "evidence_rows", "t_ms"],
        )

    def __str__(self) -> str:
        problems = sum(f.severity in ("error", "warning") for f in self.findings)
        noun = {"rtclab": "an rtclab run", "webrtc-internals": "a webrtc-internals dump", "rtcstats": "an rtcstats dump"}
        head = f"Diagnosis of {noun.get(self.source, 'an event frame')}: {self.outcome}; "
        head += "no problem found" if problems == 0 else f"{problems} problem{'s' if problems > 1 else ''} found"
        lines = [head]
        for i, f in enumerate(self.findings, 1):
            lines.append("")
            lines += f._lines(i)
        if self.undecided:
            lines.append("")
            lines.append("Not decided (the trace lacks what the check needs):")
            for code, why in self.undecided:
                lines += textwrap.wrap(f"{code}: {why}", width=96, initial_indent="  - ", subsequent_indent="    ")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


# --------------------------------------------------------------------------------------
# the frame, read once
# --------------------------------------------------------------------------------------


class _Frame:
    """The input frame with the questions every check asks."""

    def __init__(self, frame: pd.DataFrame, meta: dict[str, Any], params: dict[str, Any]) -> None:
        f = frame if frame.index.is_unique else frame.reset_index(drop=True)
        self.f = f
        self.meta = meta
        self.params = params
        self.source = str(meta.get("source") or ("rtclab" if params else "frame"))
        self.browser = self.source in ("webrtc-internals", "rtcstats")
        col = {c: f[c].astype(object).where(f[c].notna(), "").astype(str) for c in ("actor", "kind", "name", "value", "prev", "ref", "detail")}
        self.actor, self.kind, self.name = col["actor"], col["kind"], col["name"]
        self.value, self.prev, self.ref, self.detail = col["value"], col["prev"], col["ref"], col["detail"]
        self.t = f["t_ms"].astype(float)
        self.sides = [s for s in SIDES if (self.actor == s).any()]
        self.has_signaling = bool((self.kind == "signal").any())

    def rows(self, mask: pd.Series) -> pd.DataFrame:
        return self.f.loc[mask[mask].index]

    def mask(self, **match: str | tuple[str, ...]) -> pd.Series:
        m = pd.Series(True, index=self.f.index)
        for col, val in match.items():
            series = getattr(self, col)
            m &= series.isin(val) if isinstance(val, tuple) else series == val
        return m

    def state_rows(self, side: str, name: str) -> pd.DataFrame:
        return self.rows(self.mask(actor=side, kind="state", name=name))

    def reached(self, side: str, name: str, values: tuple[str, ...]) -> bool:
        return bool(self.mask(actor=side, kind="state", name=name, value=values).any())

    def connected(self, side: str) -> bool:
        if self.mask(actor=side, kind="state", name="connectionState").any():
            return self.reached(side, "connectionState", ("connected",))
        return self.reached(side, "iceConnectionState", CONNECTED_ICE)

    def failed(self, side: str) -> bool:
        return self.reached(side, "connectionState", ("failed",)) or self.reached(side, "iceConnectionState", ("failed",))

    def outcome(self) -> str:
        if not self.sides:
            return "unknown"
        if all(self.connected(s) for s in self.sides):
            return "connected"
        if any(self.failed(s) for s in self.sides):
            return "failed"
        return "stalled"

    def state_at(self, side: str, name: str, t: float) -> str:
        """The value of a state machine at time ``t`` (the last change at or before it)."""
        rows = self.state_rows(side, name)
        rows = rows[rows["t_ms"] <= t]
        return str(rows["value"].iloc[-1]) if len(rows) else ""

    def state_before(self, side: str, name: str, idx: Any) -> str:
        """The value of a state machine just before row ``idx`` (rows are in recorded order)."""
        pos = self.f.index.get_loc(idx)
        rows = self.state_rows(side, name)
        rows = rows[[self.f.index.get_loc(i) < pos for i in rows.index]]
        return str(rows["value"].iloc[-1]) if len(rows) else ("stable" if name == "signalingState" else "new")

    def collisions(self) -> pd.Series:
        """Rows where a remote offer met a peer that had its own offer out (``have-local-offer``): glare."""
        offers = {str(r) for r in self.ref[(self.kind == "signal") & (self.value == "sent") & self.detail.str.startswith("offer")]}
        hit = pd.Series(False, index=self.f.index)
        delivered = (self.kind == "signal") & (self.value == "delivered") & self.ref.isin(offers) & self.actor.isin(SIDES)
        for idx in delivered[delivered].index:
            hit[idx] = self.state_before(self.actor[idx], "signalingState", idx) == "have-local-offer"
        hit |= (self.kind == "call") & (self.name == "rollback") & self.detail.str.contains("implicit", regex=False)
        hit |= ((self.kind == "call") & (self.name == "setRemoteDescription") & (self.value == "error")
                & self.detail.str.contains("have-local-offer", regex=False))
        hit |= ((self.kind == "state") & (self.name == "signalingState") & (self.prev == "have-local-offer")
                & (self.value == "have-remote-offer"))
        # Chromium's implicit rollback: have-local-offer -> stable -> have-remote-offer inside one setRemoteDescription
        group = self.f["pc"].astype(str) if "pc" in self.f.columns else self.actor
        sig = (self.kind == "state") & (self.name == "signalingState")
        settled = (self.kind == "call") & self.name.isin(["setRemoteDescription", "setLocalDescription"])
        for _key, idxs in sig[sig].groupby(group[sig]).groups.items():
            idxs = list(idxs)
            for before, now in zip(idxs, idxs[1:]):
                if (self.value[now] == "have-remote-offer" and self.value[before] == "stable"
                        and self.prev[before] == "have-local-offer"):
                    lo, hi = self.f.index.get_loc(before), self.f.index.get_loc(now)
                    between = settled.iloc[lo + 1:hi] & (group.iloc[lo + 1:hi] == group[now])
                    if not between.any():
                        hit[now] = True
        return hit

    def first(self, mask: pd.Series) -> float:
        hit = self.t[mask]
        return float(hit.min()) if len(hit) else math.nan

    def other(self, side: str) -> str:
        return "callee" if side == "caller" else "caller"


def _ms(t: float) -> str:
    return f"{t:.0f} ms" if abs(t) >= 10 else f"{t:.1f} ms"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------------------
# the checks: each returns findings; it may note what it could not decide
# --------------------------------------------------------------------------------------


class _Doctor:
    def __init__(self, fr: _Frame) -> None:
        self.fr = fr
        self.findings: list[Finding] = []
        self.undecided: list[tuple[str, str]] = []
        self.outcome = fr.outcome()
        self.broken = self.outcome != "connected"
        self.claimed: set[Any] = set()  # evidence rows a specific finding has explained

    def add(self, code: str, title: str, severity: str, explanation: str, evidence: pd.DataFrame, notebook: str) -> None:
        self.findings.append(Finding(code, title, severity, explanation, evidence.sort_values("t_ms", kind="stable"), notebook))

    def undecide(self, code: str, why: str) -> None:
        self.undecided.append((code, why))

    def sev(self) -> str:
        return "error" if self.broken else "warning"

    # -- early candidates ---------------------------------------------------------------

    def early_candidates(self) -> None:
        fr = self.fr
        lost = fr.mask(kind="ice", name="candidate", value="lost")
        no_pc = lost & fr.detail.str.contains("no peer connection", regex=False)
        null_pc = fr.mask(kind="error") & fr.detail.str.contains(r"properties of null.*addIceCandidate", regex=True)
        for side in fr.sides:
            mine = (no_pc | null_pc) & (fr.actor == side)
            if not mine.any():
                continue
            other = fr.other(side)
            refs = set(fr.ref[mine]) - {""}
            n = sum(1 for r in refs if not r.endswith(":end"))
            n_err = int((null_pc & (fr.actor == side)).sum())
            end = any(r.endswith(":end") for r in refs)
            delivered = fr.mask(actor=side, kind="signal", name="new-ice-candidate", value="delivered") & fr.ref.isin(refs)
            pc = fr.mask(actor=side, kind="call", name="RTCPeerConnection")
            first_pc = pc & (fr.t == fr.first(pc)) if pc.any() else pc
            click = fr.mask(kind="user", name="click", value="answer")
            t_lost = fr.first(mine)
            t_pc = fr.first(pc)
            first_click = click & (fr.t == fr.first(click)) if click.any() else click
            evidence = fr.rows(mine | delivered | first_pc | (first_click if click.any() and fr.first(click) >= t_lost else click & False))
            count = _plural(n, "candidate") if n else (_plural(n_err, "candidate") if n_err else "candidates")
            what = f"{count} of the {other}'s" + (" (and its end-of-candidates)" if end else "")
            when = "it never created one" if math.isnan(t_pc) else f"it created one only at {_ms(t_pc)}"
            if click.any() and not math.isnan(t_pc) and fr.first(click) <= t_pc:
                when += f", when the user clicked Answer ({_ms(fr.first(click))})"
            expl = (f"{what} reached the {side}'s app before it had a peer connection ({when}). "
                    f"With nothing to add them to, they were lost: the {side} never learned where the {other} can be reached. ")
            if n_err:
                how = "caught and logged" if (null_pc & (fr.actor == side) & (fr.name == "app")).all() or not (
                    null_pc & (fr.actor == side) & (fr.name == "onmessage")).any() else "thrown out of its message handler"
                expl += f"The app tried anyway and hit a null peer connection ({_plural(n_err, 'TypeError')}, {how}). "
            if self.broken:
                expl += ("ICE then had only one direction of candidates, and the checks that direction allows did not get "
                         "through: the connection never came up. ")
            else:
                expl += (f"The call connected anyway: the {side} learned a peer-reflexive candidate from the {other}'s checks. "
                         "That rescue works on a flat network, not behind NATs. ")
            expl += ("Fix: create the peer connection as soon as the offer arrives (answer at once, let the Answer click "
                     "only add media), or queue candidates that come early and add them after setRemoteDescription.")
            self.add("candidates-before-peer-connection", "Candidates arrived before the peer connection existed",
                     self.sev(), expl, evidence, "03_timing_trap")
        ignored = lost & fr.detail.str.contains("ignored by the app", regex=False)
        for side in fr.sides:
            mine = ignored & (fr.actor == side)
            if mine.any():
                n = int((~fr.ref[mine].str.endswith(":end")).sum())
                expl = (f"{_plural(n, 'candidate')} from the {fr.other(side)} reached the {side}'s app after its peer connection "
                        "existed, but the app never passed them to addIceCandidate. A candidate not added is a path ICE never tries.")
                self.add("candidates-ignored", "Candidates delivered but never added", self.sev(), expl, fr.rows(mine), "03_timing_trap")

    def after_end_of_candidates(self) -> None:
        fr = self.fr
        for side in fr.sides:
            sender = fr.other(side)
            end = fr.mask(actor=side, kind="ice", name="candidate", value="added") & fr.ref.str.endswith(":end")
            if not end.any():
                continue
            t_end = fr.first(end)
            later = (fr.mask(actor=side, kind="ice", name="candidate", value=("added", "late", "rejected", "ignored"))
                     & fr.ref.str.startswith(sender + ":") & ~fr.ref.str.endswith(":end") & (fr.t > t_end))
            if not later.any():
                continue
            refs = set(fr.ref[later])
            errors = fr.mask(actor=side, kind=("error", "call"), name="addIceCandidate") & fr.ref.isin(refs) & (fr.t > t_end)
            self.claimed |= set(errors[errors].index)
            fates = ", ".join(f"{n} {v}" for v, n in fr.value[later].value_counts().items())
            expl = (f"{_plural(len(refs), 'candidate')} of the {sender} reached the {side} after the {sender}'s end-of-candidates "
                    f"({_ms(t_end)}): {fates}. The signaling channel delivered them out of order. RFC 8838 lets an ICE agent "
                    "ignore candidates after the end; Chromium 156 still adds and uses them (rtclab's Peer too: 'late'). Fix: "
                    "a channel that keeps order, or no end-of-candidates over a channel that may reorder (the counteroffer app).")
            sev = "error" if self.broken and fr.mask(actor=side, kind="ice", name="candidate", value="added").sum() <= 1 else (
                "warning" if (~fr.value[later].isin(["added", "late"])).any() else "info")
            self.add("candidates-after-end", "Candidates arrived after end-of-candidates", sev, expl,
                     fr.rows((end & (fr.t == t_end)) | later | errors), "03_timing_trap")

    def before_remote_description(self) -> None:
        fr = self.fr
        err = fr.mask(kind="error", name="addIceCandidate")
        handled: set[Any] = set()
        for side in fr.sides:
            srd = fr.mask(actor=side, kind="call", name="setRemoteDescription", value="ok")
            t_srd = fr.first(srd)
            mine = err & (fr.actor == side)
            early = mine & (fr.value == "InvalidStateError") & (
                fr.detail.str.contains("remote description", case=False, regex=False) | (fr.t < t_srd if not math.isnan(t_srd) else True))
            if not early.any():
                continue
            handled |= set(early[early].index)
            hit = fr.collisions() & (fr.actor == side)
            if hit.any():
                t_glare = fr.first(hit)
                ignoring = pd.Series(False, index=fr.f.index)
                for i in early[early].index:
                    ignoring[i] = fr.t[i] >= t_glare and fr.state_at(side, "signalingState", fr.t[i]) == "have-local-offer"
                if (early & ~ignoring).sum() == 0:
                    refs = set(fr.ref[early]) - {""}
                    expl = (f"During glare the {side} kept its own offer (have-local-offer) and did not apply the {fr.other(side)}'s; "
                            f"the {_plural(int(early.sum()), 'candidate')} that came with that ignored offer failed with "
                            "InvalidStateError, as perfect negotiation expects (it suppresses exactly these errors). Nothing to fix.")
                    self.add("candidates-before-remote-description", "Candidates of an ignored offer rejected (glare)", "info",
                             expl, fr.rows(early), "07_glare")
                    continue
            refs = set(fr.ref[early]) - {""}
            related = fr.mask(actor=side, kind=("call", "ice"), name=("addIceCandidate", "candidate"), value=("error", "rejected")) & fr.ref.isin(refs)
            first_srd = srd & (fr.t == t_srd) if srd.any() else srd
            n = int(early.sum())
            expl = (f"The {side} called addIceCandidate {_plural(n, 'time')} before it had a remote description"
                    + (f" (setRemoteDescription succeeded only at {_ms(t_srd)})" if not math.isnan(t_srd) else "")
                    + ". A browser rejects such a candidate with InvalidStateError (Chromium: 'The remote description was null') "
                    "and the candidate is gone unless the app keeps it. ")
            expl += ("This call still connected, through the candidates that went the other way; behind NATs it would not. "
                     if not self.broken else "Without those candidates the connection did not come up. ")
            expl += "Fix: queue candidates until setRemoteDescription has resolved, then add them in order."
            self.add("candidates-before-remote-description", "Candidates added before the remote description (InvalidStateError)",
                     self.sev(), expl, fr.rows(early | related | first_srd), "03_timing_trap")
        other = err & ~fr.f.index.isin(list(handled | self.claimed))
        if other.any():
            kinds = ", ".join(sorted(set(fr.value[other])))
            expl = (f"addIceCandidate failed {_plural(int(other.sum()), 'time')} ({kinds}). A rejected candidate is a path ICE "
                    "never tries; the detail column has the browser's message (a malformed line, an unknown sdpMid, ...).")
            self.add("addicecandidate-failed", "addIceCandidate failed", self.sev(), expl, fr.rows(other), "03_timing_trap")

    # -- offer before tracks -------------------------------------------------------------

    def offer_before_tracks(self) -> None:
        fr = self.fr
        offer_desc = (fr.kind == "call") & fr.name.isin(["createOffer", "setLocalDescription"]) & (fr.value == "ok") & fr.detail.str.startswith("offer m=")
        offer_sig = fr.mask(kind="signal", value="sent") & fr.detail.str.startswith("offer m=")
        for side in fr.sides:
            mine = (offer_desc | offer_sig) & (fr.actor == side)
            if not mine.any():
                continue
            empty = mine & fr.detail.str.startswith("offer m=[]")
            if not empty.any():
                continue
            t_empty = fr.first(empty)
            tracks = fr.mask(actor=side, kind="call", name=("addTrack", "addTransceiver"), value="ok") & (fr.t >= t_empty)
            later_media = mine & ~fr.detail.str.startswith("offer m=[]") & (fr.t > t_empty)
            if not tracks.any() or later_media.any():
                continue
            nn = fr.mask(actor=side, kind="call", name="negotiationneeded") & (fr.t >= t_empty)
            expl = (f"The {side} made its offer at {_ms(t_empty)} with no media section (m=[]), and added its tracks only "
                    f"afterwards ({_ms(fr.first(tracks))}). An offer describes what the peer connection has when it is created: "
                    "nothing, here. ")
            if nn.any():
                expl += (f"The browser did fire negotiationneeded at {_ms(fr.first(nn))}, but nothing answered it with a new offer. ")
            expl += "Fix: add the tracks first and create the offer in the negotiationneeded handler."
            self.add("offer-before-tracks", "Offer made before the tracks were added: no media negotiated", "error", expl,
                     fr.rows((empty & (fr.t == t_empty)) | tracks | nn), "02_offer_after_tracks")

    # -- glare -------------------------------------------------------------------------

    def glare(self) -> None:
        fr = self.fr
        hit = fr.collisions()
        if not hit.any():
            return
        t_glare = fr.first(hit)
        after = fr.t >= t_glare
        rollback = fr.mask(kind="call", name="rollback") & after
        errors = fr.mask(kind="call", value="error", name=("setRemoteDescription", "setLocalDescription")) & after
        err_rows = fr.mask(kind="error", name=("setRemoteDescription", "setLocalDescription")) & after
        enter = fr.mask(kind="state", name="signalingState", value="have-local-offer") & (fr.t <= t_glare)
        last_enter = pd.Series(False, index=fr.f.index)
        for side in fr.sides:
            mine = enter & (fr.actor == side)
            if mine.any():
                last_enter[mine[mine].index[-1]] = True
        evidence = fr.rows(last_enter | hit | rollback | errors | err_rows)
        who = sorted(set(fr.actor[hit]))
        if errors.any() or self.broken:
            expl = (f"At {_ms(t_glare)} an offer reached the {' and the '.join(who)} while {'each' if len(who) > 1 else 'it'} "
                    "had its own offer out (have-local-offer): both sides offered at once. Nothing resolved the collision")
            if errors.any():
                e = fr.rows(errors).iloc[0]
                expl += f": {e['actor']}'s {e['name']} failed ({str(e['detail'])[:90]})"
            expl += (". Naive code answers whatever offer arrives and then applies an answer in the wrong state. "
                     "Fix: perfect negotiation — one polite peer rolls back its own offer and answers, the impolite one ignores "
                     "the colliding offer.")
            self.add("glare", "Both sides offered at once (glare), unresolved", "error", expl, evidence, "07_glare")
        else:
            how = " by rollback" if rollback.any() else ""
            self.add("glare", f"Glare, resolved{how}", "info",
                     f"At {_ms(t_glare)} an offer reached the {' and the '.join(who)} while {'each' if len(who) > 1 else 'it'} "
                     "had its own offer out; the "
                     f"collision was resolved{how} and the call connected.", evidence, "07_glare")

    # -- candidates exchanged -------------------------------------------------------------

    def _received(self, side: str) -> int:
        fr = self.fr
        ice = fr.mask(actor=side, kind="ice", name="candidate", value=("added", "rejected", "lost")) & ~fr.ref.str.endswith(":end") & (fr.ref != "remote:end")
        ice &= ~((fr.value == "added") & (fr.detail == "end-of-candidates"))
        n = int(ice.sum())
        srd = fr.mask(actor=side, kind="call", name="setRemoteDescription", value="ok")
        for d in fr.detail[srd]:
            m = re.search(r"candidates=(\d+)", d)
            n += int(m.group(1)) if m else 0
        return n

    def candidates_exchanged(self) -> None:
        fr = self.fr
        if len(fr.sides) == 1:
            self._one_side_candidates(fr.sides[0])
            return
        if len(fr.sides) < 2:
            return
        if not (fr.mask(kind="call", name="setRemoteDescription", value="ok").any()):
            return  # negotiation never got that far: other findings say why
        empty_sides = [s for s in fr.sides if self._received(s) == 0 and fr.mask(actor=s, kind="call", name="setRemoteDescription", value="ok").any()]
        for side in empty_sides:
            sender = fr.other(side)
            gathered = fr.mask(actor=sender, kind="ice", name="candidate", value="gathered")
            sent = fr.mask(actor=sender, kind="signal", name="new-ice-candidate", value="sent") & ~fr.ref.str.endswith(":end")
            states = fr.mask(actor=side, kind="state", name=("iceConnectionState", "connectionState"))
            n_g = int(gathered.sum())
            if n_g == 0:
                continue  # the sender gathered nothing to send: a consequence of what went wrong before
            if fr.has_signaling:
                how = (f"the {sender} gathered {_plural(n_g, 'candidate')} but its app sent none over signaling "
                       "(look at its icecandidate handler)") if not sent.any() else f"none of the {sender}'s candidates reached it"
            else:
                how = f"the {sender} gathered {_plural(n_g, 'candidate')}; the {side} added none"
            both = len(empty_sides) == 2
            lead = f"The {side} received no candidate from the {sender}: "
            if both:
                lead = "No candidate went either way: "
                how = ("neither side added a candidate of the other" if not fr.has_signaling else
                       "neither app sent its candidates over signaling (look at the icecandidate handlers)")
            if self.fr.connected(side):
                expl = (f"{lead}{how}. The call connected anyway — the {side} "
                        f"learned a peer-reflexive candidate from the {sender}'s checks — but behind NATs one direction is not enough.")
                sev = "warning"
                nb = "04_works_on_my_machine"
            else:
                expl = (f"{lead}{how}. "
                        + ("Then an ICE agent has nothing to check: Chromium stays in 'new' and never fails; nothing ends "
                           "such a call unless the app has its own timer. " if both else
                           "ICE had one direction of candidates only, and it did not get through. ")
                        + "Fix: send every icecandidate event's candidate to the other side and add what arrives.")
                sev = "error"
                nb = "08_timeouts"
            title = "No candidates were exchanged" if both else f"The {side} received no candidates"
            if both:
                gathered = fr.mask(kind="ice", name="candidate", value="gathered")
            self.add("no-candidates", title, sev, expl, fr.rows(gathered | states | sent), nb)
            if both:
                break

    def _one_side_candidates(self, side: str) -> None:
        """A dump of one peer connection: did it ever get a remote candidate?"""
        fr = self.fr
        srd = fr.mask(actor=side, kind="call", name="setRemoteDescription", value="ok")
        if not srd.any() or self._received(side) > 0:
            return
        states = fr.mask(actor=side, kind="state", name=("iceConnectionState", "connectionState"))
        expl = (f"The {side} never added a remote candidate, and its remote description carried none. Either the other "
                "app never sends its candidates or this one never passes them to addIceCandidate: the trace holds one side "
                "only, so it cannot tell which. ")
        if fr.connected(side):
            expl += ("The call connected anyway, through the other side's checks (a peer-reflexive candidate); behind NATs "
                     "one direction is not enough.")
            sev, nb = "warning", "04_works_on_my_machine"
        else:
            expl += "With nothing to check, ICE cannot connect; Chromium stays in 'new' when no candidate went either way."
            sev, nb = "error", "08_timeouts"
        self.add("no-candidates", f"The {side} received no candidates", sev, expl, fr.rows(srd | states), nb)

    def end_of_candidates(self) -> None:
        fr = self.fr
        if not fr.has_signaling:
            if fr.source == "webrtc-internals" or (fr.browser and not fr.mask(kind="ice", name="candidate", value="end").any()):
                self.undecide("no-end-of-candidates", "this trace records no end-of-candidates at all, and Chromium's dumps "
                              "(webrtc-internals and its rtcstats export) never log one (neither the null icecandidate event "
                              "nor addIceCandidate(null))")
                return
        silent: list[tuple[str, pd.Series]] = []
        for side in fr.sides:
            if fr.has_signaling:
                sent = fr.mask(actor=side, kind="signal", name="new-ice-candidate", value="sent")
                real = sent & ~fr.ref.str.endswith(":end")
                end = sent & fr.ref.str.endswith(":end")
            else:  # a browser trace: the other side's addIceCandidate rows
                other = fr.other(side)
                real = fr.mask(actor=other, kind="ice", name="candidate", value="added") & fr.ref.str.startswith(side + ":")
                end = fr.mask(actor=other, kind="call", name="addIceCandidate") & fr.ref.str.endswith(":end")
            if real.any() and not end.any():
                silent.append((side, real))
        if not silent:
            return
        evidence = pd.Series(False, index=fr.f.index)
        stuck_sides = []
        for side, real in silent:
            other = fr.other(side)
            ice = fr.state_rows(other, "iceConnectionState")
            last = str(ice["value"].iloc[-1]) if len(ice) else ""
            if not fr.connected(other) and last == "checking":
                stuck_sides.append(other)
            evidence |= (real & (fr.t == fr.first(real))) | (real & (fr.t == fr.t[real].max()))
            evidence |= pd.Series(fr.f.index.isin(ice.index[-1:]), index=fr.f.index)
        who = " and the ".join(f"{side} ({_plural(int(real.sum()), 'candidate')})" for side, real in silent)
        expl = (f"The {who} never sent end-of-candidates. End-of-candidates (RFC 8838) tells the other agent that no "
                "more are coming. A browser does not need it to give up: Chromium 156 reports 'failed' about 15 s after "
                "checking starts, with or without it (RFC 8863 also forbids failing before its timer); an agent that waits "
                "for it, as aiortc on its own does, stays in 'checking'. ")
        if stuck_sides:
            expl += (f"The {' and the '.join(stuck_sides)} is still in 'checking' at the end of the trace.")
        else:
            expl += "Here the call did not need it."
        title = "Candidates never ended (no end-of-candidates)"
        self.add("no-end-of-candidates", title, "warning" if stuck_sides else "info", expl, fr.rows(evidence), "08_timeouts")

    def needs_turn(self) -> None:
        fr = self.fr
        if len(fr.sides) < 2 or not any(fr.failed(s) for s in fr.sides):
            return
        if any(f.severity == "error" for f in self.findings):
            return  # something else already explains the failure
        if fr.mask(kind="ice", name="candidate", value=("lost", "rejected")).any():
            return
        if any(self._received(s) == 0 for s in fr.sides):
            return
        gathered = fr.mask(kind="ice", name="candidate", value="gathered")
        typ = fr.detail.str.extract(r"\btyp (\w+)", expand=False).fillna("")
        raddr = fr.detail.str.extract(r"\braddr (\S+)", expand=False).fillna("")
        address = fr.detail.str.extract(r"^(?:a=)?candidate:\S+ \d+ \S+ \d+ (\S+)", expand=False).fillna("")
        srflx = gathered & (typ == "srflx") & (address != raddr)  # a reflexive address unlike its base: a NAT
        relay = gathered & (typ == "relay")
        if relay.any() or not all((srflx & (fr.actor == s)).any() for s in fr.sides):
            return
        failed = fr.mask(kind="state", name=("iceConnectionState", "connectionState"), value="failed")
        nat = self.fr.params.get("nat")
        expl = ("Every candidate arrived and was added, both sides sit behind NAT (each gathered a server-reflexive, srflx, "
                "candidate: its address as the STUN server saw it), and ICE still failed: no direct pair got through, and "
                "neither side had a relay candidate to fall back on")
        if nat:
            expl += f" (the run's NAT type: {nat})"
        if self.fr.params and not self.fr.params.get("turn"):
            expl += "; the run offered no TURN server"
        expl += (". NATs that map every destination to a new port (symmetric) defeat STUN's hole punching. Fix: configure a "
                 "TURN server in iceServers.")
        self.add("needs-turn", "No direct path through these NATs, and no TURN relay", "error", expl,
                 fr.rows(srflx | (failed & ~failed.duplicated())), "04_works_on_my_machine")

    # -- timing ----------------------------------------------------------------------

    def renegotiation_after_answer(self) -> None:
        fr = self.fr
        click = fr.mask(kind="user", name="click", value="answer")
        if not click.any():
            if fr.browser:
                self.undecide("renegotiation-after-answer", "the trace has no user clicks, so answer-to-media cannot be measured")
            return
        t_click = fr.first(click)
        frames = fr.mask(kind="media", name="first-frame") & (fr.t >= t_click)
        if not frames.any():
            return
        t_media = float(max(fr.first(frames & (fr.actor == s)) for s in fr.sides if (frames & (fr.actor == s)).any()))
        total = t_media - t_click
        sig = fr.mask(kind="state", name="signalingState")
        done_before = (sig & (fr.prev == "have-local-offer") & (fr.value == "stable") & (fr.t <= t_click)).any()
        local_offer = sig & (fr.value == "have-local-offer") & (fr.t >= t_click)
        if not done_before or not local_offer.any() or total <= 0:
            return  # no offer/answer round had completed before the click: the first negotiation, not a renegotiation
        first_offer = local_offer & (fr.t == fr.first(local_offer))
        offerer = str(fr.actor[first_offer].iloc[0])
        started = (fr.mask(actor=offerer, kind="call", name=("negotiationneeded", "createOffer")) & (fr.t >= t_click)) | first_offer
        t_start = fr.first(started)
        answered = (sig & (fr.actor == offerer) & (fr.prev == "have-local-offer") & (fr.value == "stable")
                    & (fr.t >= fr.first(first_offer)))
        if not answered.any():
            return
        t_end = fr.first(answered)
        span = t_end - t_start
        if span < 0.5 * total:
            return
        expl = (f"From the Answer click to media took {_ms(total)}; {_ms(span)} of it ({span / total:.0%}) is a new offer/answer "
                f"round that the {offerer} started after the click (from {_ms(t_start)} until its answer was applied at "
                f"{_ms(t_end)}): adding media on Answer makes answering wait for signaling (the article's own flow does this). If that round "
                "trip matters: negotiate the media before the user answers (an early answer, the counteroffer flow) and let "
                "Answer only start sending (replaceTrack, or the transceiver's direction); the early connection shows the "
                "callee's addresses to the caller before the user decides (notebook 13).")
        ev = (click & (fr.t == t_click)) | (started & (fr.t == t_start)) | first_offer | (answered & (fr.t == t_end)) | frames
        self.add("renegotiation-after-answer", "Answering waits for a renegotiation", "warning", expl, fr.rows(ev), "11_answering_the_call")

    def hangup_on_disconnected(self) -> None:
        fr = self.fr
        for side in fr.sides:
            disc = fr.mask(actor=side, kind="state", name=("iceConnectionState", "connectionState"), value="disconnected")
            if not disc.any():
                continue
            t_d = fr.first(disc)
            end = (fr.mask(actor=side, kind="call", name="close") | fr.mask(actor=side, kind="signal", name="hang-up", value="sent")
                   | fr.mask(kind="user", name="click", value="hangup")) & (fr.t >= t_d)
            if not end.any():
                continue
            t_end = fr.first(end)
            between = fr.mask(actor=side, kind="state", name=("iceConnectionState", "connectionState"),
                              value=("failed", "connected", "completed", "closed")) & (fr.t > t_d) & (fr.t < t_end)
            if between.any() and not fr.rows(between)["value"].isin(["closed"]).all():
                continue
            if t_end - t_d >= CHROMIUM_DISCONNECTED_TO_FAILED_MS:
                continue
            expl = (f"The {side}'s connection went 'disconnected' at {_ms(t_d)} and the app ended the call {_ms(t_end - t_d)} later, "
                    "before any 'failed'. 'disconnected' is transient: ICE keeps checking and often recovers (a Wi-Fi hiccup, "
                    "a moment of loss); Chromium reports 'failed' about 10 s later if it does not. Fix: end the call on 'failed' "
                    "(or after your own grace period), or try restartIce() while disconnected.")
            self.add("hangup-on-disconnected", "'disconnected' treated as the end of the call", "warning", expl,
                     fr.rows((disc & (fr.t == t_d)) | (end & (fr.t == t_end))), "12_when_calls_break")

    # -- errors ------------------------------------------------------------------------

    def errors(self) -> None:
        fr = self.fr
        app = fr.mask(kind="error", name="app")
        null_pc = fr.detail.str.contains(r"properties of null.*addIceCandidate", regex=True)
        seen = {str(d) for f in self.findings for d in f.evidence.loc[f.evidence["kind"].astype(str) == "error", "detail"]}
        caught = app & ~null_pc & ~fr.detail.isin(seen)  # the others are explained with their finding already
        if caught.any():
            kinds = ", ".join(sorted(set(fr.value[caught])))
            expl = (f"The app caught {_plural(int(caught.sum()), 'error')} ({kinds}) and carried on, the way the MDN sample's "
                    "reportError() only logs. Each is a step of the call that silently did not happen; the rows' detail has the "
                    "message. Fix: handle the cause (queue, retry, roll back) instead of logging it away.")
            self.add("swallowed-errors", "Errors caught and only logged by the app", self.sev(), expl, fr.rows(caught), "03_timing_trap")
        elif fr.browser:
            self.undecide("swallowed-errors", "a browser dump does not show the app's code, so errors it caught are invisible "
                          "(failed API calls are reported)")
        handler = fr.mask(kind="error", name="onmessage") & ~fr.detail.isin(seen)
        if handler.any():
            kinds = ", ".join(sorted(set(fr.value[handler])))
            expl = (f"{_plural(int(handler.sum()), 'message')} could not be handled by the receiving app ({kinds}): the handler "
                    "threw or had no answer for that message, and what the message carried was lost.")
            self.add("handler-errors", "Errors in the signaling message handler", self.sev(), expl, fr.rows(handler), "03_timing_trap")
        lost = fr.mask(kind="signal", value=("dropped", "refused"))
        if lost.any():
            names = ", ".join(sorted(set(fr.name[lost])))
            expl = (f"The signaling channel lost {_plural(int(lost.sum()), 'message')} ({names}). WebRTC never resends "
                    "signaling: a lost offer or answer stalls the negotiation, a lost candidate is a path ICE never tries. "
                    "Fix: a reliable channel (or acknowledgements), and end-of-candidates so a peer knows when it has all.")
            self.add("signaling-lost", "Signaling messages were lost", self.sev(), expl, fr.rows(lost), "03_timing_trap")
        explained = {i for f in self.findings for i in f.evidence.index}
        calls = fr.mask(kind="error") & ~fr.name.isin(["app", "onmessage", "addIceCandidate", "deadline", "runner", "signaling"])
        calls &= ~fr.f.index.isin(list(explained))
        if calls.any():
            first = fr.rows(calls).iloc[0]
            nb = "07_glare" if "stable" in str(first["detail"]) or "have-local-offer" in str(first["detail"]) else "01_anatomy"
            expl = (f"{_plural(int(calls.sum()), 'API call')} failed; the first: {first['name']} with {first['value']} "
                    f"({str(first['detail'])[:120]}). A failed step of negotiation leaves the two peers disagreeing on state.")
            self.add("api-error", "An API call failed", self.sev(), expl, fr.rows(calls), nb)

    # -- media and the fallbacks -------------------------------------------------------

    def media(self) -> None:
        fr = self.fr
        if self.outcome != "connected" or "offer-before-tracks" in {f.code for f in self.findings}:
            return
        tracks = fr.mask(kind="media", name="track")
        if not tracks.any():
            return
        declined = fr.mask(kind="user", name="click") & (fr.value == "decline")
        if declined.any():  # the app ended the call on purpose: no frame is the expected result
            expl = ("The callee's user declined the call and the apps closed it, so no media was meant to flow. "
                    "What did cross before the decision (candidates, and media in a flow without a gate) is "
                    "listed by rtclab.exposed_candidates.")
            self.add("declined", "The call was declined", "info", expl, fr.f.loc[declined[declined].index], "13_call_control_privacy")
            return
        frames = fr.mask(kind="media", name="first-frame")
        if fr.browser and not frames.any():
            self.undecide("no-media", "the dump holds no getStats sample showing decoded frames")
            return
        missing = []
        for idx in tracks[tracks].index:
            side, kind = fr.actor[idx], fr.value[idx]
            if not (frames & (fr.actor == side) & (fr.value == kind)).any():
                missing.append(idx)
        if missing:
            expl = ("The peers connected and negotiated a track, but no frame of it arrived. Is the sender's track added and "
                    "enabled, is the transceiver's direction sending?")
            self.add("no-media", "Connected, but a track never received a frame", "error", expl,
                     fr.f.loc[missing], "02_offer_after_tracks")

    def fallback(self) -> None:
        fr = self.fr
        if any(f.severity == "error" for f in self.findings) or not self.broken or not fr.sides:
            return
        states = fr.mask(kind="state", name=("iceConnectionState", "connectionState"))
        if any(fr.failed(s) for s in fr.sides):
            failed = states & (fr.value == "failed")
            expl = ("ICE tried every pair of candidates and none answered, so the connection failed; nothing else in the trace "
                    "explains it. Look at the candidates each side got: unreachable addresses fail only after tens of seconds.")
            self.add("ice-failed", "ICE found no working pair", "error", expl, fr.rows(failed), "08_timeouts")
            return
        last = [fr.state_rows(s, "iceConnectionState").tail(1) for s in fr.sides]
        last_rows = pd.concat([x for x in last if len(x)]) if any(len(x) for x in last) else fr.f.iloc[0:0]
        where = ", ".join(f"{r['actor']} ICE {r['value']}" for _, r in last_rows.iterrows()) or "no ICE state change at all"
        deadline = fr.mask(kind="error", name="deadline")
        expl = (f"The call neither connected nor failed before the trace ended ({where}). ICE waits as long as it has "
                "candidates to check or may still get some: only the app's own timer ends such a call.")
        self.add("stalled", "The call neither connected nor failed", "error", expl,
                 pd.concat([last_rows, fr.rows(deadline)]), "08_timeouts")


def _inputs(run_or_frame: Any) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    if isinstance(run_or_frame, (str, Path)):
        from .traces import load_trace

        frame = load_trace(run_or_frame)
    elif isinstance(run_or_frame, pd.DataFrame):
        frame = run_or_frame
    elif isinstance(getattr(run_or_frame, "events", None), pd.DataFrame):
        frame = run_or_frame.events
        params = dict(getattr(run_or_frame, "params", {}) or {})
        meta = dict(frame.attrs.get("meta") or {})
        meta.setdefault("source", "rtclab")
        return frame, meta, params
    else:
        raise TypeError(f"diagnose wants a Run, an event DataFrame or a trace file, got {type(run_or_frame).__name__}")
    missing = [c for c in ("t_ms", "actor", "kind", "name", "value", "prev", "ref", "detail") if c not in frame.columns]
    if missing:
        raise ValueError(f"not an rtclab event frame: missing columns {missing}")
    meta = dict(frame.attrs.get("meta") or {})
    params = dict(meta.get("params") or (meta.get("run") or {}).get("params") or {})
    if "flow" in meta and "source" not in meta:
        meta["source"] = "rtclab"
    return frame, meta, params


def diagnose(run_or_frame: Any) -> Diagnosis:
    """Explain a call from its events: findings, most important first.

    Parameters
    ----------
    run_or_frame
        A :class:`rtclab.Run`, an event frame (from a run, :func:`rtclab.load`
        or :func:`rtclab.load_trace`), or the path of a trace file.

    Returns
    -------
    Diagnosis
        ``findings`` (each with ``code``, ``title``, ``severity``,
        ``explanation``, ``evidence`` rows and ``notebook``), the ``outcome``
        the states show, and what the trace could not decide. ``print()`` it
        for a readable report.

    Examples
    --------
    >>> import rtclab
    >>> d = rtclab.diagnose(rtclab.run("answer-on-click", topology="nat"))  # doctest: +SKIP
    >>> d.codes[0], d[0].notebook  # doctest: +SKIP
    ('candidates-before-peer-connection', '03_timing_trap')
    """
    frame, meta, params = _inputs(run_or_frame)
    fr = _Frame(frame, meta, params)
    doc = _Doctor(fr)
    for check in (doc.early_candidates, doc.after_end_of_candidates, doc.before_remote_description, doc.offer_before_tracks, doc.glare,
                  doc.candidates_exchanged, doc.needs_turn, doc.end_of_candidates, doc.renegotiation_after_answer,
                  doc.hangup_on_disconnected, doc.errors, doc.media, doc.fallback):
        check()
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    findings = sorted(doc.findings, key=lambda f: (rank[f.severity], f.t_ms if not math.isnan(f.t_ms) else math.inf))
    return Diagnosis(findings, doc.outcome, fr.source, list(meta.get("lacks") or []), doc.undecided)
