"""The set-up check finds the repository folder hiding the package, and says what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rtclab
from rtclab.checks import check_setup, shadowing_folders

ROOT = Path(__file__).resolve().parents[1]


def _fake_clone(parent: Path) -> Path:
    """A folder named rtclab laid out like a clone: no __init__.py at its top, the repository's __main__.py."""
    repo = parent / "rtclab"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[project]\nname = 'rtclab'\n")
    shutil.copy(ROOT / "__main__.py", repo / "__main__.py")
    return repo


def test_a_passing_report_is_the_same_everywhere() -> None:
    """Every check passes here, and the report holds no path or version (stored notebook output)."""
    report = check_setup(call=False)
    assert list(report.columns) == ["check", "result"]
    assert set(report["result"]) == {"ok"}
    assert "no folder hides the package" in list(report["check"])


def test_the_repository_folder_hiding_the_package_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started next to a clone, with the package installed by a finder (pip install -e), the check names the folder and the fix."""
    repo = _fake_clone(tmp_path)
    monkeypatch.chdir(tmp_path)
    package_root = str(Path(rtclab.__file__).resolve().parents[1])
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or ".") != package_root])
    assert shadowing_folders() == [repo.resolve()]
    result = check_setup(call=False).set_index("check")["result"]["no folder hides the package"]
    assert "module 'rtclab' has no attribute 'run'" in result
    assert "Start Python (or Jupyter) inside the repository folder" in result


def test_no_shadowing_when_the_package_is_a_regular_path_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the package's folder on sys.path (PYTHONPATH, a plain install), a rtclab folder nearby is harmless."""
    _fake_clone(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(rtclab.__file__).resolve().parents[1]))
    assert shadowing_folders() == []


def test_python_m_rtclab_next_to_a_clone_explains_itself(tmp_path: Path) -> None:
    """The mistake for real: from the clone's parent folder, import rtclab has no run, and python -m rtclab says why."""
    _fake_clone(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([sys.executable, "-c", "import rtclab; print(rtclab.__file__, hasattr(rtclab, 'run'))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    if probe.stdout.split() != ["None", "False"]:
        pytest.skip(f"rtclab is a regular path entry in this environment, nothing to shadow: {probe.stdout!r}")
    done = subprocess.run([sys.executable, "-m", "rtclab", "flows"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "the repository folder hides the installed rtclab package" in done.stderr
    assert "Change into the repository folder (cd rtclab)" in done.stderr


def test_cli_check_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    """python -m rtclab check prints one line per check and exits 0 when all pass."""
    from rtclab.__main__ import main

    assert main(["check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Python", "3.11", "or", "newer", "ok"]
    assert lines[-1].startswith("a simulated call connects") and lines[-1].endswith("ok")
