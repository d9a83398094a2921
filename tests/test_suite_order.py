"""The suite's file order (the root conftest.py): longest file first, each file's tests together and in order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _root_conftest():
    spec = importlib.util.spec_from_file_location("rtclab_root_conftest", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_longest_first_unknown_by_test_count(monkeypatch):
    """Known files sort by their measured seconds, unknown ones by 0.1 s a test; ties keep the collection order."""
    conf = _root_conftest()
    monkeypatch.setattr(conf, "FILE_SECONDS", {"tests/test_long.py": 50, "nb/slow.ipynb": 20, "tests/test_short.py": 1})
    ids = (["tests/test_short.py::a", "tests/test_short.py::b"]
           + [f"tests/test_many.py::t{i}" for i in range(300)]  # unknown: 30 s
           + ["tests/test_few.py::x", "tests/test_few2.py::y"]  # unknown: 0.1 s each, a tie
           + ["nb/slow.ipynb::Cell 0", "tests/test_long.py::z"])
    assert conf.file_order(ids) == ["tests/test_long.py", "tests/test_many.py", "nb/slow.ipynb", "tests/test_short.py",
                                    "tests/test_few.py", "tests/test_few2.py"]


def test_every_table_entry_is_a_file_of_the_suite():
    """The weight table names files that exist (a renamed file would silently lose its place)."""
    conf = _root_conftest()
    missing = [path for path in conf.FILE_SECONDS if not (ROOT / path).is_file()]
    assert missing == []


def test_the_hook_groups_each_file_in_its_own_order(monkeypatch):
    """Items of one file end up together, in their collected order, the heaviest file first."""
    conf = _root_conftest()
    monkeypatch.setattr(conf, "FILE_SECONDS", {"tests/test_b.py": 9})

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    ids = ["tests/test_a.py::one", "tests/test_b.py::one", "tests/test_a.py::two", "tests/test_b.py::two",
           "tests/test_c.py::one"]
    items = [Item(i) for i in ids]
    conf.pytest_collection_modifyitems(items)
    assert [item.nodeid for item in items] == ["tests/test_b.py::one", "tests/test_b.py::two", "tests/test_a.py::one",
                                               "tests/test_a.py::two", "tests/test_c.py::one"]


def test_nbval_is_loaded_by_the_root_conftest_after_the_jsonschema_guard(pytestconfig):
    """nbval runs (loaded by the conftest, not automatically), and its nbformat import did not build rfc3987_syntax's parsers."""
    import sys

    assert pytestconfig.pluginmanager.has_plugin("nbval.plugin")
    assert not pytestconfig.pluginmanager.has_plugin("nbval")  # `-p no:nbval`: not loaded twice
    assert "nbformat" in sys.modules and "jsonschema" in sys.modules
    assert sys.modules["rfc3987_syntax"] is None
