"""Point an app's exception at the line of *its* code, not rtclab's.

When a learner's app raises (an ``InvalidStateError`` from
``addIceCandidate``, a ``NameError`` from a typo), the ``error`` row's
``detail`` ends with where it happened in their code: ``(at
my_app.py:7, in on_message)``, or ``(at Cell In[3], line 7, in on_message)``
for a notebook cell, as IPython's own tracebacks name it. That is the last frame of the
traceback that belongs to app code: rtclab's own modules, the standard
library and installed packages (aiortc, asyncio…) are skipped, so a failure
deep inside a browser call is reported at the app line that made the call.
The built-in flows live inside rtclab, so their error rows are unchanged.
"""

from __future__ import annotations

import os
import site
import sysconfig
import traceback
import types
from functools import lru_cache
from pathlib import Path

__all__ = ["app_frame", "frame_location", "with_location"]


@lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    roots = {str(Path(__file__).resolve().parent)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(str(Path(path).resolve()))
    for path in [*site.getsitepackages(), site.getusersitepackages()]:
        roots.add(str(Path(path).resolve()))
    return tuple(sorted(roots))


@lru_cache(maxsize=256)
def _is_app_file(filename: str) -> bool:
    if filename.startswith("<frozen"):
        return False  # importlib and friends
    if filename.startswith("<"):
        return True  # code compiled from a string: a notebook cell, exec'd source
    path = os.path.realpath(filename)
    return not any(path == root or path.startswith(root + os.sep) for root in _library_roots())


def app_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The last traceback frame of ``exc`` that is app code (``None`` if none is).

    Examples
    --------
    >>> def app():
    ...     raise ValueError("boom")
    >>> try:
    ...     app()
    ... except ValueError as exc:
    ...     app_frame(exc).name
    'app'
    """
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if _is_app_file(frame.filename):
            return frame
    return None


def with_location(text: str, exc: BaseException) -> str:
    """``text`` followed by ``(at FILE:LINE, in FUNCTION)`` of :func:`app_frame`, if any.

    Examples
    --------
    >>> with_location("no app frame", ValueError("x"))
    'no app frame'
    """
    frame = app_frame(exc)
    if frame is None:
        return text
    cell = _notebook_cell(frame.filename)
    if cell is not None:  # as IPython's own tracebacks name it
        return f"{text} (at Cell In[{cell}], line {frame.lineno}, in {frame.name})"
    return f"{text} (at {frame.filename}:{frame.lineno}, in {frame.name})"


def _notebook_cell(filename: str) -> int | None:
    """The execution count of the notebook cell compiled as ``filename``, in a running IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with jupyterlab
        return None
    shell = get_ipython()
    names = getattr(getattr(shell, "compile", None), "_filename_map", None)
    if not isinstance(names, dict):
        return None
    count = names.get(filename)
    return count if isinstance(count, int) else None


def frame_location(frame: types.FrameType) -> str:
    """``(at FILE:LINE, in FUNCTION)`` for a live frame of app code, else ``""``.

    Used for a task that is still running (a stack, not a traceback).
    """
    code = frame.f_code
    if not _is_app_file(code.co_filename):
        return ""
    cell = _notebook_cell(code.co_filename)
    if cell is not None:
        return f"(at Cell In[{cell}], line {frame.f_lineno}, in {code.co_name})"
    return f"(at {code.co_filename}:{frame.f_lineno}, in {code.co_name})"
