"""The interactive call panel: the sample app's buttons driving rtclab peers.

:class:`CallPanel` shows **Call**, **Answer** and **Hang up** buttons like the
MDN sample app, with controls for the flow, the network, the NAT type, the
signaling latency and the callee's think time. It is a thin shell: each
button calls a plain method (:meth:`CallPanel.call`, :meth:`CallPanel.answer`,
:meth:`CallPanel.hang_up`) that tests drive directly.

How a click becomes a call
--------------------------
* ``network="real"``: the call runs live in a worker thread, on 127.0.0.1 (see
  :mod:`rtclab.interfaces`), like the sample app: **Call** rings, the callee's
  app waits for the real **Answer** click, the call stays up until **Hang up**
  (at most :attr:`CallPanel.LIVE_DEADLINE_S`), and the event table fills in as
  rows arrive.
* ``network="sim"``: the simulated network runs on a virtual clock, which
  cannot wait for a person. **Call** starts the ringing; **Answer** measures
  your think time and plays the whole call with it (deterministically, so the
  part before your click is exactly what happened while it rang). With
  *auto-answer* ticked, **Call** plays the call at once with the think time of
  the slider. **Hang up** then ends the (already finished) call's display.

Each **Call** clears the previous call's table and plot. The event table is a
scrollable HTML table with every row. Displayed in a notebook that has no
kernel yet (opened before running), the panel shows a picture of itself and a
sentence saying to run the cell, instead of widget internals.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .flows import FLOWS, Flow, get_flow
from .lab import NAT_TYPES, Run, run
from .params import RunParams
from .trace import COLUMNS

__all__ = ["CallPanel", "table_html"]


_IN_CALL = "<b>in call</b>: connected; click <b>Hang up</b> to end it"


def _widgets() -> Any:
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - ipywidgets is a dependency
        raise ImportError("CallPanel needs ipywidgets: pip install ipywidgets") from exc
    return ipywidgets


class CallPanel:
    """Call / Answer / Hang up buttons with live controls, showing table and plot.

    Parameters
    ----------
    flow
        The flow to play: a name from ``rtclab.FLOWS`` or your own
        :class:`rtclab.Flow` (added to the flow menu under its name).
    network
        ``"sim"`` or ``"real"``.
    auto_answer
        Answer by itself after the think time of the slider.
    **params
        Other fixed run parameters (``seed``, ``topology``...), checked by
        :class:`rtclab.params.RunParams` like every run's.

    Attributes
    ----------
    phase
        ``"idle"``, ``"ringing"``, ``"in call"`` or ``"ended"``.
    last_run
        The last finished call, a :class:`rtclab.Run`.

    Examples
    --------
    >>> from rtclab.widgets import CallPanel
    >>> panel = CallPanel("counteroffer", auto_answer=True)
    >>> panel.call().outcome  # doctest: +SKIP
    'connected'
    >>> panel  # in a notebook this displays the panel  # doctest: +SKIP
    >>> CallPanel(rtclab.Flow("mine", "my apps", my_caller, my_callee))  # doctest: +SKIP
    """

    #: A live call on the real network stays up until Hang up, at most this long (seconds).
    LIVE_DEADLINE_S = 600.0

    def __init__(self, flow: str | Flow = "counteroffer", *, network: str = "sim", auto_answer: bool = False, **params: Any) -> None:
        w = _widgets()
        RunParams.from_dict({**params, "network": network})  # refuse bad parameters before drawing anything
        self.params = dict(params)
        label = {"description_width": "initial"}
        spec = get_flow(flow)  # a clear error for an unknown name
        if FLOWS.get(spec.name) is spec:
            self.flow = w.Dropdown(options=list(FLOWS), value=spec.name, description="flow", style=label)
        else:  # an own flow: listed first (label -> Flow), chosen
            options: list[tuple[str, str | Flow]] = [(spec.name, spec), *((name, name) for name in FLOWS)]
            self.flow = w.Dropdown(options=options, value=spec, description="flow", style=label)
        self.network = w.Dropdown(options=["sim", "real"], value=network, description="network", style=label)
        self.topology = w.Dropdown(options=["lan", "nat"], value=self.params.pop("topology", "lan"), description="topology", style=label)
        self.nat = w.Dropdown(options=list(NAT_TYPES), value=self.params.pop("nat", "port-restricted"), description="NAT", style=label)
        # the sliders' limits come from the run parameters' ranges (rtclab.params), capped to what a hand can set
        lat, think = RunParams.param("signaling_latency_ms"), RunParams.param("answer_delay_ms")
        wide = {"width": "420px"}
        self.latency = w.FloatSlider(value=self.params.pop("signaling_latency_ms", 20.0), min=lat.low, max=min(500.0, lat.high),
                                     step=5, description="signaling latency (ms)", style=label, layout=wide, tooltip=lat.help)
        self.think = w.FloatSlider(value=self.params.pop("answer_delay_ms", 1000.0), min=think.low, max=min(5000.0, think.high),
                                   step=100, description="think time (ms)", style=label, layout=wide, tooltip=think.help)
        self.auto = w.Checkbox(value=auto_answer, description="auto-answer", indent=False)
        self.call_button = w.Button(description="Call", button_style="success", icon="phone")
        self.answer_button = w.Button(description="Answer", button_style="info", disabled=True)
        self.hangup_button = w.Button(description="Hang up", button_style="danger", disabled=True)
        self.status = w.HTML("<b>idle</b>: choose a flow and click Call")
        self.table = w.HTML("")
        self.plot = w.Output()
        self.call_button.on_click(lambda _b: self.call())
        self.answer_button.on_click(lambda _b: self.answer())
        self.hangup_button.on_click(lambda _b: self.hang_up())
        self.last_run: Run | None = None
        self.rows: list[tuple[Any, ...]] = []
        self.phase = "idle"
        self._ring_started: float | None = None
        self._live: _LiveCall | None = None
        self._lock = threading.Lock()
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self.widget = w.VBox([
            w.HBox([self.flow, self.network]),
            w.HBox([self.topology, self.nat]),
            w.HBox([self.latency, self.think, self.auto]),
            w.HBox([self.call_button, self.answer_button, self.hangup_button, self.status]),
            self.table,
            self.plot,
        ])

    # -- the pure part ---------------------------------------------------------------------

    def run_params(self, **extra: Any) -> dict[str, Any]:
        """The parameters the next call will use, from the controls."""
        p = dict(self.params)
        p.update(
            network=self.network.value,
            topology=self.topology.value,
            nat=self.nat.value,
            signaling_latency_ms=float(self.latency.value),
            answer_delay_ms=float(self.think.value),
        )
        p.update(extra)
        RunParams.from_dict(p)  # the same checks as run(): a bad value is refused here, naming the parameter
        return p

    def call(self) -> Run | None:
        """Click *Call*: clears the last call. Returns the finished run when it completes at once."""
        if self._live is not None:  # a live call is still up: end it first, as the sample app does
            self.hang_up()
        self._clear()
        self.hangup_button.disabled = False
        if self.auto.value:
            return self._play(self.run_params())
        self.answer_button.disabled = False
        self.phase = "ringing"
        if self.network.value == "real":
            try:
                self._main_loop = asyncio.get_running_loop()  # a notebook's kernel: finish the call there
            except RuntimeError:
                self._main_loop = None
            params = self.run_params(answer_delay_ms=None, hold_s=self.LIVE_DEADLINE_S, deadline_s=self.LIVE_DEADLINE_S)
            generation = self._generation
            self._live = _LiveCall(self.flow.value, params, self._on_row, lambda r: self._on_done(generation, r))
            self._live.start()
            self._set_status("ringing… click <b>Answer</b>")
            return None
        self._ring_started = time.monotonic()
        self._set_status("ringing… click <b>Answer</b> (the call plays with your think time)")
        return None

    def answer(self, *, think_ms: float | None = None) -> Run | None:
        """Click *Answer*. ``think_ms`` overrides the measured think time (for tests).

        On the simulated network the call is played now and returned; on the
        real one the live call goes on (returns ``None``) until *Hang up*.
        """
        self.answer_button.disabled = True
        if self._live is not None:
            self._live.answer()
            self.phase = "in call"
            self._set_status("answered: connecting…")
            # an early-answer flow (counteroffer) may have connected while it rang: then no
            # further "connected" row will come to update the status
            if any(r[2] == "state" and r[3] == "connectionState" and r[4] == "connected" for r in list(self.rows)):
                self._set_status(_IN_CALL)
            return None
        if self._ring_started is None and think_ms is None:
            self._set_status("nobody is calling: click Call first")
            return None
        elapsed = (time.monotonic() - (self._ring_started or time.monotonic())) * 1000.0
        self._ring_started = None
        return self._play(self.run_params(answer_delay_ms=round(think_ms if think_ms is not None else elapsed, 1)))

    def hang_up(self) -> None:
        """Click *Hang up*: end the call (a live call stops now; its run is kept and shown)."""
        self.hangup_button.disabled = True
        self.answer_button.disabled = True
        self._ring_started = None
        live, self._live = self._live, None
        if live is not None:
            live.hang_up()
            self._finish_live(self._generation, live.wait())
        self.phase = "ended"
        outcome = f" ({self.last_run.outcome})" if self.last_run is not None and live is not None else ""
        self._set_status(f"hung up{outcome}")

    def wait(self, timeout: float | None = None) -> Run | None:
        """Wait for a live call to end by itself (failure or its deadline); its run, or None if none."""
        live = self._live
        if live is None:
            return self.last_run
        run_ = live.wait(timeout if timeout is not None else self.LIVE_DEADLINE_S + 30)
        self._finish_live(self._generation, run_)
        return run_

    # -- display ---------------------------------------------------------------------------

    def _clear(self) -> None:
        self._generation += 1  # a live call still finishing in its thread no longer owns the display
        self.rows = []
        self.table.value = ""
        self.plot.outputs = ()
        self.last_run = None

    def _play(self, params: dict[str, Any]) -> Run:
        self._set_status("calling…")
        return self._show(run(self.flow.value, **params))

    def _show(self, r: Run) -> Run:
        self.last_run = r
        self.answer_button.disabled = True
        up = r.outcome == "connected" and r.params.get("network") == "sim"
        self.hangup_button.disabled = not up  # a connected (simulated) call is up until Hang up
        self.phase = "in call" if up else "ended"
        m = r.metrics
        extra = ""
        if not pd.isna(m["answer_to_media_ms"]):
            extra = f", answer→media {m['answer_to_media_ms']:.0f} ms"
        self._set_status(f"<b>{html.escape(r.outcome)}</b>: {html.escape(r.reason)}{extra}")
        self.table.value = table_html(r.table())
        # write into the Output widget directly: displaying "into" it only works
        # under a live kernel front end (nbval and scripts would get the output)
        import matplotlib.pyplot as plt
        from IPython.display import Image

        fig = r.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        self.plot.outputs = ()
        self.plot.append_display_data(Image(buf.getvalue()))
        return r

    def _finish_live(self, generation: int, r: Run) -> None:
        with self._lock:
            if generation != self._generation or self.last_run is r:
                return  # a newer call is on screen, or this one is shown already
            self._live = None
            self._show(r)

    def _on_done(self, generation: int, r: Run) -> None:
        """From the live call's thread: show the run on the notebook's loop (or here, without one)."""
        if self._main_loop is not None and not self._main_loop.is_closed():
            self._main_loop.call_soon_threadsafe(self._finish_live, generation, r)
        else:
            self._finish_live(generation, r)

    def _on_row(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        _t, actor, kind, name, value = row[:5]
        if kind == "state" and name == "connectionState" and value == "connected" and self.phase == "in call":
            self._set_status(_IN_CALL)
        if kind in _TABLE_KINDS:  # the rows the table shows (candidate pair checks and packets are not)
            shown = [r for r in list(self.rows) if r[2] in _TABLE_KINDS]
            self.table.value = table_html(pd.DataFrame(shown, columns=list(COLUMNS)), live=True)

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget, and for a notebook opened before it runs: a picture of the panel and a sentence."""
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = (
            f"Call panel ({self.flow.label}, network {self.network.value}): run this cell to use it. "
            "Its buttons need a running kernel; until then this is only its picture."
        )
        picture = _static_picture()
        if picture is not None:
            bundle["image/png"] = picture
        return bundle


_TABLE_KINDS = ("call", "signal", "state", "media", "user", "error")
#: Chromium's drawing of a fresh panel in JupyterLab: ``python -m rtclab.browser jupyterlab --loopback
#: --out DIR`` writes it as ``DIR/panel.png`` (copy it here when the panel's look changes).
_PICTURE = Path(__file__).with_name("static") / "callpanel.png"


def _static_picture() -> str | None:
    """The panel as a browser drew it (``rtclab/static/callpanel.png``), base64, or None if missing."""
    try:
        return base64.b64encode(_PICTURE.read_bytes()).decode("ascii")
    except OSError:
        return None


def table_html(frame: pd.DataFrame, *, live: bool = False, max_height_px: int = 320) -> str:
    """Every row of an event table as HTML in a scrollable box (no pandas row truncation).

    Examples
    --------
    >>> import pandas as pd
    >>> text = table_html(pd.DataFrame({"t_ms": [0.0], "actor": ["caller"], "detail": ["a<b"]}))
    >>> "overflow-y: auto" in text and "a&lt;b" in text and "1 row" in text
    True
    """
    cols = [c for c in ("t_ms", "actor", "kind", "name", "value", "detail") if c in frame.columns]
    view = frame[cols].copy()
    if "detail" in view:
        view["detail"] = view["detail"].astype(str).str.slice(0, 60)
    if "t_ms" in view:
        view["t_ms"] = view["t_ms"].map(lambda t: f"{float(t):.1f}")
    n = len(view)
    caption = f"{n} row{'s' if n != 1 else ''}" + (" so far (live)" if live else "") + "; scroll for more" * (n > 12)
    body = view.to_html(index=False, escape=True, border=0, justify="left")
    return (f'<div style="font-size: 12px; color: #555">{caption}</div>'
            f'<div style="max-height: {max_height_px}px; overflow-y: auto; font-size: 12px">{body}</div>')


class _LiveCall:
    """A real-network call in a worker thread whose callee waits for a real click."""

    def __init__(self, flow: str | Flow, params: dict[str, Any], on_row: Any, on_done: Any = None) -> None:
        self.flow = flow
        self.params = params
        self.on_row = on_row
        self.on_done = on_done
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()
        self.result: Run | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="rtclab-panel", daemon=True)
        self._users: list[Any] = []
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(5)

    def _main(self) -> None:
        from . import lab

        async def main() -> Run:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            return await lab._arun_real(self.flow, lab._params(self.flow, self.params), hooks=self)

        try:
            self.result = asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - surfaced by wait()
            self.error = exc
        finally:
            self.ready.set()
        if self.result is not None and self.on_done is not None:
            self.on_done(self.result)

    # hooks called by lab._play
    def attach(self, trace: Any, users: dict[str, Any]) -> None:
        trace.subscribe(self.on_row)
        self._users = list(users.values())
        self.ready.set()

    def stop_event(self) -> asyncio.Event | None:
        return self._stop

    def answer(self) -> None:
        if self.loop is not None:
            for user in self._users:
                self.loop.call_soon_threadsafe(user.click, "answer")

    def hang_up(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)

    def wait(self, timeout: float = 120.0) -> Run:
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.result is not None, "the live call did not finish"
        return self.result
