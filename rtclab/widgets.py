"""The interactive call panel: the sample app's buttons driving rtclab peers.

:class:`CallPanel` shows **Call**, **Answer** and **Hang up** buttons like the
MDN sample app, with controls for the flow, the network, the NAT type, the
signaling latency and the callee's think time. It is a thin shell: each
button calls a plain method (:meth:`CallPanel.call`, :meth:`CallPanel.answer`,
:meth:`CallPanel.hang_up`) that tests drive directly.

How a click becomes a call
--------------------------
* ``network="real"``: the call runs live in a worker thread; the callee's
  app waits on the real **Answer** click, and the event table fills in as rows
  arrive.
* ``network="sim"``: the simulated network runs on a virtual clock, which
  cannot wait for a person. **Call** starts the ringing; **Answer** measures
  your think time and plays the whole call with it (deterministically, so the
  part before your click is exactly what happened while it rang). With
  *auto-answer* ticked, **Call** plays the call at once with the think time of
  the slider.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

import pandas as pd

from .flows import FLOWS, Flow, get_flow
from .lab import NAT_TYPES, Run, run
from .params import RunParams

__all__ = ["CallPanel"]


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
    **params
        Other fixed run parameters (``seed``, ``topology``...).

    Examples
    --------
    >>> from rtclab.widgets import CallPanel
    >>> panel = CallPanel("counteroffer", auto_answer=True)
    >>> panel.call().outcome  # doctest: +SKIP
    'connected'
    >>> panel  # in a notebook this displays the panel  # doctest: +SKIP
    >>> CallPanel(rtclab.Flow("mine", "my apps", my_caller, my_callee))  # doctest: +SKIP
    """

    def __init__(self, flow: str | Flow = "counteroffer", *, network: str = "sim", auto_answer: bool = False, **params: Any) -> None:
        w = _widgets()
        RunParams.from_dict({**params, "network": network})  # refuse bad parameters before drawing anything
        self.params = dict(params)
        spec = get_flow(flow)  # a clear error for an unknown name
        if FLOWS.get(spec.name) is spec:
            self.flow = w.Dropdown(options=list(FLOWS), value=spec.name, description="flow")
        else:  # an own flow: listed first (label -> Flow), chosen
            options: list[tuple[str, str | Flow]] = [(spec.name, spec), *((name, name) for name in FLOWS)]
            self.flow = w.Dropdown(options=options, value=spec, description="flow")
        self.network = w.Dropdown(options=["sim", "real"], value=network, description="network")
        self.topology = w.Dropdown(options=["lan", "nat"], value=self.params.pop("topology", "lan"), description="topology")
        self.nat = w.Dropdown(options=list(NAT_TYPES), value=self.params.pop("nat", "port-restricted"), description="NAT")
        # the sliders' limits come from the run parameters' ranges (rtclab.params), capped to what a hand can set
        lat, think = RunParams.param("signaling_latency_ms"), RunParams.param("answer_delay_ms")
        label = {"description_width": "initial"}
        self.latency = w.FloatSlider(value=self.params.pop("signaling_latency_ms", 20.0), min=lat.low, max=min(500.0, lat.high),
                                     step=5, description="signaling latency (ms)", style=label, tooltip=lat.help)
        self.think = w.FloatSlider(value=self.params.pop("answer_delay_ms", 1000.0), min=think.low, max=min(5000.0, think.high),
                                   step=100, description="think time (ms)", style=label, tooltip=think.help)
        self.auto = w.Checkbox(value=auto_answer, description="auto-answer")
        self.call_button = w.Button(description="Call", button_style="success", icon="phone")
        self.answer_button = w.Button(description="Answer", button_style="info", disabled=True)
        self.hangup_button = w.Button(description="Hang up", button_style="danger", disabled=True)
        self.status = w.HTML("<b>idle</b>")
        self.table = w.Output(layout={"max_height": "320px", "overflow": "auto"})
        self.plot = w.Output()
        self.call_button.on_click(lambda _b: self.call())
        self.answer_button.on_click(lambda _b: self.answer())
        self.hangup_button.on_click(lambda _b: self.hang_up())
        self.last_run: Run | None = None
        self.rows: list[tuple[Any, ...]] = []
        self._ring_started: float | None = None
        self._live: _LiveCall | None = None
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
        """Click *Call*. Returns the finished run when it completes at once."""
        self.hangup_button.disabled = False
        if self.auto.value:
            return self._play(self.run_params())
        if self.network.value == "real":
            self._live = _LiveCall(self.flow.value, self.run_params(answer_delay_ms=None), self._on_row)
            self.rows = []
            self._live.start()
            self.answer_button.disabled = False
            self._set_status("ringing… click Answer")
            return None
        self._ring_started = time.monotonic()
        self.answer_button.disabled = False
        self._set_status("ringing… click Answer (the call plays with your think time)")
        return None

    def answer(self, *, think_ms: float | None = None) -> Run | None:
        """Click *Answer*. ``think_ms`` overrides the measured think time (for tests)."""
        self.answer_button.disabled = True
        if self._live is not None:
            self._live.answer()
            run_ = self._live.wait()
            self._live = None
            return self._show(run_)
        if self._ring_started is None and think_ms is None:
            self._set_status("nobody is calling: click Call first")
            return None
        elapsed = (time.monotonic() - (self._ring_started or time.monotonic())) * 1000.0
        self._ring_started = None
        return self._play(self.run_params(answer_delay_ms=round(think_ms if think_ms is not None else elapsed, 1)))

    def hang_up(self) -> None:
        """Click *Hang up*: end a live call now (its run is kept)."""
        self.hangup_button.disabled = True
        self.answer_button.disabled = True
        self._ring_started = None
        if self._live is not None:
            self._live.hang_up()
            self._show(self._live.wait())
            self._live = None
        self._set_status("hung up")

    # -- display ---------------------------------------------------------------------------

    def _play(self, params: dict[str, Any]) -> Run:
        self._set_status("calling…")
        return self._show(run(self.flow.value, **params))

    def _show(self, r: Run) -> Run:
        self.last_run = r
        self.answer_button.disabled = True
        self.hangup_button.disabled = True
        m = r.metrics
        extra = ""
        if not pd.isna(m["answer_to_media_ms"]):
            extra = f", answer→media {m['answer_to_media_ms']:.0f} ms"
        self._set_status(f"<b>{r.outcome}</b>: {r.reason}{extra}")
        # write into the Output widgets directly: displaying "into" them only works
        # under a live kernel front end (nbval and scripts would get the output)
        self.table.outputs = ()
        self.table.append_display_data(r.table())
        import matplotlib.pyplot as plt
        from IPython.display import Image

        fig = r.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        self.plot.outputs = ()
        self.plot.append_display_data(Image(buf.getvalue()))
        return r

    def _on_row(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        t, actor, kind, name, value = row[:5]
        if kind in ("state", "signal", "user", "error", "media"):
            self.status.value = f"{t:8.1f} ms  {actor} {kind} {name} {value}"

    def _set_status(self, text: str) -> None:
        self.status.value = text

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook display
        from IPython.display import display

        display(self.widget)


class _LiveCall:
    """A real-network call in a worker thread whose callee waits for a real click."""

    def __init__(self, flow: str | Flow, params: dict[str, Any], on_row: Any) -> None:
        self.flow = flow
        self.params = params
        self.on_row = on_row
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
