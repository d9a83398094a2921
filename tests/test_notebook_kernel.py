"""The notebooks' kernel-start retry (``notebooks/conftest.py``): loud, bounded, and only for a kernel that never answers."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import nbval.kernel
import pytest

CONFTEST = Path(__file__).resolve().parent.parent / "notebooks" / "conftest.py"


@pytest.fixture
def nb_conftest() -> Any:
    """The notebooks' conftest, loaded afresh; nbval's own function is restored afterwards."""
    before = nbval.kernel.start_new_kernel
    spec = importlib.util.spec_from_file_location("rtclab_notebooks_conftest", CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        nbval.kernel.start_new_kernel = before


def _flaky(fails: int, error: type[Exception] = RuntimeError) -> tuple[list[dict[str, Any]], Any]:
    calls: list[dict[str, Any]] = []

    def start(**kwargs: Any) -> str:
        calls.append(dict(kwargs))
        if len(calls) <= fails:
            kwargs["stderr"].write(f"attempt {len(calls)}: stuck importing\n".encode())
            kwargs["stderr"].flush()
            raise error("Kernel didn't respond in 60 seconds")
        return "km, kc"

    return calls, start


def test_loading_the_conftest_wraps_nbvals_kernel_start(nb_conftest: ModuleType) -> None:
    assert nbval.kernel.start_new_kernel.__module__ == "rtclab_notebooks_conftest"
    assert nb_conftest.KERNEL_START_ATTEMPTS == 3
    real = nbval.kernel.start_new_kernel.__wrapped__
    assert real.__module__ == "nbval.kernel"  # loading twice (pytest, then this test) does not wrap a wrapper


def test_a_kernel_that_answers_on_the_second_attempt_is_used_and_the_retry_is_reported(nb_conftest: ModuleType) -> None:
    calls, start = _flaky(fails=1)
    with pytest.warns(nb_conftest.KernelStartRetried) as record:
        result = nb_conftest.start_with_retry(start)(startup_timeout=60, kernel_name="k", stderr=None, cwd="/tmp")
    assert result == "km, kc"
    assert len(calls) == 2
    assert all(c["startup_timeout"] == 60 and c["kernel_name"] == "k" and c["cwd"] == "/tmp" for c in calls)
    assert calls[0]["stderr"] is not None and calls[0]["stderr"] is not calls[1]["stderr"]  # never /dev/null
    (warning,) = [w for w in record if w.category is nb_conftest.KernelStartRetried]
    message = str(warning.message)
    assert "attempt 1/3 failed (Kernel didn't respond in 60 seconds)" in message
    assert "attempt 1: stuck importing" in message  # what the failed kernel said


def test_a_kernel_that_never_answers_fails_after_the_last_attempt(nb_conftest: ModuleType) -> None:
    calls, start = _flaky(fails=99)
    with pytest.warns(nb_conftest.KernelStartRetried) as record, pytest.raises(RuntimeError, match="didn't respond"):
        nb_conftest.start_with_retry(start)(startup_timeout=60, kernel_name="k")
    assert len(calls) == 3
    assert [str(w.message).split(" failed")[0] for w in record if w.category is nb_conftest.KernelStartRetried] == ["kernel start attempt 1/3", "kernel start attempt 2/3"]


def test_other_errors_are_not_retried(nb_conftest: ModuleType) -> None:
    calls, start = _flaky(fails=1, error=ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no retry warning either
        with pytest.raises(ValueError):
            nb_conftest.start_with_retry(start)(kernel_name="k")
    assert len(calls) == 1


def test_real_kernels_through_the_wrapper(nb_conftest: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real kernel starts and answers; a real kernel process that dies at start is retried, and what it said is reported."""
    start = nb_conftest.start_with_retry(nbval.kernel.start_new_kernel.__wrapped__, attempts=2)
    with open(os.devnull, "w") as devnull:
        km, kc = start(startup_timeout=60, kernel_name=nbval.kernel.CURRENT_ENV_KERNEL_NAME, stderr=devnull, cwd=str(tmp_path))
    try:
        reply = kc.kernel_info(reply=True, timeout=30)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert not km.is_alive()

    spec = tmp_path / "kernels" / "dies-at-start"
    spec.mkdir(parents=True)
    code = "import sys; sys.stderr.write('fake kernel: cannot bind its ports\\n'); sys.exit(3)"
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": [sys.executable, "-c", code, "{connection_file}"], "display_name": "dies", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    with pytest.warns(nb_conftest.KernelStartRetried) as record, pytest.raises(RuntimeError, match="Kernel died"):
        start(startup_timeout=60, kernel_name="dies-at-start", cwd=str(tmp_path))
    (warning,) = [w for w in record if w.category is nb_conftest.KernelStartRetried]
    assert "attempt 1/2 failed (Kernel died before replying to kernel_info)" in str(warning.message)
    assert "fake kernel: cannot bind its ports" in str(warning.message)
