"""The README's "rtclab vs a browser" table, generated from conformance results.

:func:`render` turns essentials (Chromium's, rtclab's in the simulation and on
the real network) into a markdown table: one row per scenario, the Chromium
cell spelling out the essentials, each rtclab cell saying ``same`` or showing
only what differs, and the verdict. :func:`readme_section` /
:func:`update_readme` read and write the copy kept in ``README.md`` between
:data:`START` and :data:`END`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .core import DOCUMENTED, MATCH, MISMATCH, Scenario, compare, verdict

__all__ = ["END", "START", "readme_section", "render", "summary", "update_readme"]

START = "<!-- conformance-table:start -->"
END = "<!-- conformance-table:end -->"
WPT = "https://github.com/web-platform-tests/wpt/tree/master/webrtc"


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "never"
    if isinstance(value, list):
        return " → ".join(_value(key, v) for v in value) if value else "none"
    if key.endswith("_s") and isinstance(value, (int, float)):
        return f"{value:g} s"
    text = str(value)
    return {"true": "yes", "false": "no"}.get(text, text)


def _label(key: str) -> str:
    return key[:-2] if key.endswith("_s") else key


def _cell(ess: dict[str, Any] | None, keys: list[str] | None = None) -> str:
    if ess is None:
        return "(not run)"
    keys = list(ess) if keys is None else keys
    parts = [f"{_label(k)}: {_value(k, ess.get(k))}" for k in keys]
    return "; ".join(parts).replace("|", "\\|")


def _rtclab_cell(chromium: dict[str, Any] | None, mine: dict[str, Any] | None) -> str:
    if mine is None:
        return "(not run)"
    if chromium is None:
        return _cell(mine)
    differing = compare(chromium, mine)
    return "same" if not differing else _cell(mine, differing)


def row_verdict(sc: Scenario, chromium: dict[str, Any] | None, sim: dict[str, Any] | None, real: dict[str, Any] | None) -> str:
    """The row's verdict: the worse of the simulated and real network's (a missing side counts as not run)."""
    if chromium is None:
        return "no Chromium reference"
    found = [verdict(sc, chromium, ess) for ess in (sim, real) if ess is not None]
    if not found:
        return "not run"
    for v in (MISMATCH, DOCUMENTED, MATCH):
        if v in found:
            return v
    return MATCH  # pragma: no cover


def summary(scenarios: list[Scenario], chromium: dict[str, dict[str, Any]], sim: dict[str, dict[str, Any]], real: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per network: how many scenarios ``match``, differ as documented, or mismatch."""
    out: dict[str, dict[str, int]] = {}
    for network, results in (("sim", sim), ("real", real)):
        counts = {MATCH: 0, DOCUMENTED: 0, MISMATCH: 0}
        for sc in scenarios:
            if sc.name in chromium and sc.name in results:
                counts[verdict(sc, chromium[sc.name], results[sc.name])] += 1
        out[network] = counts
    return out


def render(scenarios: list[Scenario], chromium: dict[str, dict[str, Any]], sim: dict[str, dict[str, Any]], real: dict[str, dict[str, Any]], *, chromium_version: str = "") -> str:
    """The markdown table (with a one-line summary under it)."""
    major = chromium_version.split(".")[0] if chromium_version else ""
    lines = [
        f"| scenario ([web-platform-tests `webrtc/`]({WPT}) file / case): behaviour | Chromium {major} | rtclab sim | rtclab real | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for sc in scenarios:
        ch = chromium.get(sc.name)
        v = row_verdict(sc, ch, sim.get(sc.name), real.get(sc.name))
        if v == DOCUMENTED:
            v = f"documented difference: {sc.difference}"
        elif v == MISMATCH:
            v = "**mismatch**"
        name = f"`{sc.name}`: {sc.title}"
        lines.append(" | ".join(["", name, _cell(ch), _rtclab_cell(ch, sim.get(sc.name)),
                                 _rtclab_cell(ch, real.get(sc.name)), v.replace("|", "\\|"), ""]).strip())
    counts = summary(scenarios, chromium, sim, real)
    n = len(scenarios)
    lines.append("")
    lines.append(
        f"{n} scenarios; Chromium {chromium_version or '?'} is the reference. rtclab matches Chromium in "
        f"{counts['sim'][MATCH]}/{n} on the simulated network and {counts['real'][MATCH]}/{n} on the real one; "
        f"documented differences: {counts['sim'][DOCUMENTED]} (sim), {counts['real'][DOCUMENTED]} (real); "
        f"mismatches: {counts['sim'][MISMATCH]} (sim), {counts['real'][MISMATCH]} (real)."
    )
    return "\n".join(lines) + "\n"


def readme_section(readme: str | Path) -> str | None:
    """The text between the markers in ``readme`` (``None`` if they are missing)."""
    text = Path(readme).read_text(encoding="utf-8")
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def update_readme(readme: str | Path, table: str) -> bool:
    """Put ``table`` between the markers; returns whether the file changed."""
    p = Path(readme)
    text = p.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{p} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    new = f"{head}{START}\n{table.strip()}\n{END}{tail}"
    if new == text:
        return False
    p.write_text(new, encoding="utf-8")
    return True
