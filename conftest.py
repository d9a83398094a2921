"""Suite-wide pytest configuration: the order in which the files are handed to the xdist workers.

``-n 3 --dist loadfile`` (``pyproject.toml``) gives each worker whole files, one after
another, in the order of the collection. Three workers on two cores: about a third of
the suite's wall time is real-time waiting (real UDP runs that wait out the browser's
15 s timers, Chromium in its namespace, the workshop server's timeouts), during which a
third worker keeps the cores busy (whole suite 183 s with two workers, 147 s with three,
on the 2-core reference machine; the CPU-bound course takes the same time either way). By default xdist first sorts the files by their
number of tests, which can leave a long file with few tests (the soak, the site build, a
notebook) for the end: one worker then runs it alone while the other sits idle. With
``--no-loadscope-reorder`` xdist keeps the collection order instead, and this hook sorts
that order longest file first (the classic longest-processing-time rule), so the short
files fill the gaps at the end and the workers finish at about the same time.

Only the order of whole files changes: the tests inside a file keep their order and stay
on one worker, module fixtures are still built once, and nothing here is asserted about
time. The weights are wall seconds measured with ``--durations`` (``python -m pytest
--durations=0``, summed per file) on the 2-core reference machine; a file missing from the
table counts 0.1 s per test. They only need to be roughly right: update the table when a
file's cost changes a lot.

Each test process (an xdist worker, or the only one with ``-n 0``) also moves what it holds
once its tests are collected (the imported modules: pandas, aiortc, matplotlib... about
300 000 objects) out of the garbage collector's reach with ``gc.freeze()``, as rtclab's
sweep workers do: every later full collection then walks only what the tests made, not
the whole heap again (the soak and the reliability tests call ``gc.collect()`` after each
run). Objects the tests create are collected, and found by ``gc.get_objects()``, as before.
"""

from __future__ import annotations

import gc
import sys

import pytest

# nbval reads the notebooks with nbformat, which imports jsonschema, which imports
# rfc3987_syntax when it is installed (JupyterLab's jupyter-events pulls it in) to check
# the "iri" string format. That import builds some thirty Earley parsers: about 0.9 s of
# CPU in every test process, the xdist controller and each worker
# (python-jsonschema/jsonschema#1428), and neither the notebook schema nor rtclab uses the
# format. Marking the module absent makes jsonschema skip that one checker. It has to
# happen before nbformat is first imported, so pyproject.toml turns nbval's automatic
# loading off (`-p no:nbval`) and this file loads it, right after.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
pytest_plugins = ["nbval.plugin"]

#: measured seconds per file: the mean of three whole-suite runs (2 workers, 2 cores, load average 0.4-4.4,
#: 30 Nov 2026; the soak, re-run and cleanup files from the last run, after gc.freeze below)
FILE_SECONDS: dict[str, float] = {
    "tests/test_plots.py": 75,
    "tests/test_browser.py": 63,
    "notebooks/10_solutions.ipynb": 58,
    "tests/test_conformance.py": 31,
    "tests/test_peer_states.py": 30,
    "tests/test_server.py": 26,
    "tests/test_sweeps.py": 17,
    "tests/test_flows.py": 17,
    "notebooks/12_when_calls_break.ipynb": 13,
    "tests/test_own_flows.py": 13,
    "tests/test_hostile.py": 13,
    "tests/test_site.py": 13,
    "tests/test_network.py": 12,
    "tests/test_lab.py": 11,
    "tests/test_cleanup.py": 11,
    "tests/test_rerun.py": 10,
    "tests/test_chaos.py": 9,
    "tests/test_widgets.py": 9,
    "tests/test_soak.py": 8,
    "notebooks/07_glare.ipynb": 7,
    "notebooks/08_timeouts.ipynb": 7,
    "notebooks/09_playground.ipynb": 7,
    "notebooks/05_counteroffer.ipynb": 7,
    "notebooks/03_timing_trap.ipynb": 6,
    "tests/test_notebook_kernel.py": 5,
    "tests/test_diagnose.py": 5,
    "tests/test_cli_files.py": 5,
    "notebooks/01_anatomy.ipynb": 4,
    "notebooks/11_answering_the_call.ipynb": 4,
    "tests/test_metrics.py": 4,
    "notebooks/14_article_claims.ipynb": 4,
    "notebooks/06_trickle_vs_vanilla.ipynb": 4,
    "notebooks/13_call_control_privacy.ipynb": 4,
    "tests/peer/test_negotiation.py": 4,
    "notebooks/04_works_on_my_machine.ipynb": 2,
    "notebooks/00_setup_check.ipynb": 2,
    "tests/test_params.py": 2,
    "tests/test_reference.py": 2,
    "notebooks/02_offer_after_tracks.ipynb": 2,
}
#: seconds per test for a file missing from the table
UNKNOWN_TEST_SECONDS = 0.1


def file_order(nodeids: list[str]) -> list[str]:
    """The files of ``nodeids`` (in first-seen order), sorted longest first by :data:`FILE_SECONDS`."""
    files: dict[str, int] = {}
    for nodeid in nodeids:
        path = nodeid.split("::", 1)[0]
        files[path] = files.get(path, 0) + 1
    weight = {path: FILE_SECONDS.get(path, UNKNOWN_TEST_SECONDS * n) for path, n in files.items()}
    return sorted(files, key=lambda path: -weight[path])  # stable: ties keep the collection order


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the items by file, longest file first; the order inside each file is unchanged."""
    rank = {path: i for i, path in enumerate(file_order([item.nodeid for item in items]))}
    items.sort(key=lambda item: rank[item.nodeid.split("::", 1)[0]])  # stable


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze the imports and the collection out of the collector's later passes (see the module docstring)."""
    gc.collect()
    gc.freeze()
