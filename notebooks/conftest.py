"""pytest configuration for the notebooks, which ``pytest --nbval`` runs (see ``pyproject.toml``).

nbval starts one Jupyter kernel per notebook. Very rarely that kernel stays
alive but never answers its first ``kernel_info`` request, and nbval then
fails every cell of that notebook with "Kernel didn't respond in 60 seconds".
The kernel's stderr goes to ``/dev/null`` in nbval, so nothing says why. We saw
it once in about 600 kernel starts, with two test suites running side by side on
2 cores; it is not rtclab's doing (no rtclab code runs before the kernel
answers), and mystmd met the same "starts in under a second, or never" hang
(jupyter-book/mystmd#2874).

A kernel start is therefore retried, at most ``KERNEL_START_ATTEMPTS`` times,
with the same per-attempt timeout as nbval's (``--nbval-kernel-startup-timeout``).
A retry is never silent: it raises a pytest warning carrying the end of the
failed kernel's stderr, so a kernel that never starts still fails the run,
with its reason.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import nbval.kernel

KERNEL_START_ATTEMPTS = 3


class KernelStartRetried(UserWarning):
    """A notebook's kernel did not answer in time and was started again."""


def start_with_retry(start: Callable[..., Any], attempts: int = KERNEL_START_ATTEMPTS) -> Callable[..., Any]:
    """Wrap nbval's ``start_new_kernel`` so a kernel that never answers is started again.

    Each attempt sends the kernel's stderr to an unlinked temporary file (nbval
    sends it to ``/dev/null``), so a failed attempt can report what the kernel said.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")

    def start_new_kernel(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, attempts + 1):
            with tempfile.TemporaryFile("w+b") as stderr:
                kwargs["stderr"] = stderr  # the kernel keeps its own descriptor; ours can close
                try:
                    return start(*args, **kwargs)
                except RuntimeError as exc:  # nbval's "Kernel didn't respond" / "Kernel died"
                    if attempt == attempts:
                        raise
                    stderr.seek(0)
                    said = stderr.read()[-2000:].decode("utf-8", "replace").strip() or "(nothing on stderr)"
                    warnings.warn(
                        f"kernel start attempt {attempt}/{attempts} failed ({exc}); starting a new kernel. "
                        f"The kernel's stderr: {said}",
                        KernelStartRetried,
                        stacklevel=2,
                    )
        raise AssertionError("unreachable")  # pragma: no cover

    start_new_kernel.__wrapped__ = start  # type: ignore[attr-defined]
    return start_new_kernel


# nbval's RunningKernel looks the function up in its module at each notebook's setup.
# Wrap nbval's own function, never a wrapper, however often this file is loaded.
_nbval_start = getattr(nbval.kernel.start_new_kernel, "__wrapped__", nbval.kernel.start_new_kernel)
nbval.kernel.start_new_kernel = start_with_retry(_nbval_start)
