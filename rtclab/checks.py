"""The set-up check: is this environment ready for the course, and if not, what to do.

:func:`check_setup` backs notebook ``00_setup_check`` and ``python -m rtclab
check``. Each check says ``ok`` or, in one sentence, what is wrong and how to
fix it; nothing in a passing report depends on the machine (so the notebook's
stored output is the same everywhere).

The classic trap it looks for: Python started in the folder that *contains*
the repository (``git clone`` gives a folder named ``rtclab``, which holds the
package folder ``rtclab/``). There, ``import rtclab`` finds the repository
folder first and imports it as an empty namespace package, and
``rtclab.run`` fails with ``module 'rtclab' has no attribute 'run'``. (With
the repository folder shadowing it, this module cannot be reached either: the
repository's top-level ``__main__.py`` then answers ``python -m rtclab`` with
the same explanation.)
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path

import pandas as pd

__all__ = ["check_setup", "shadowing_folders"]

_SHADOW_HINT = (
    "{folder} is a folder named rtclab that is not the package (the repository itself?): Python started in "
    "{parent} imports it instead of the package, and then says \"module 'rtclab' has no attribute 'run'\". "
    "Start Python (or Jupyter) inside the repository folder, or anywhere else."
)


def shadowing_folders(places: list[Path] | None = None) -> list[Path]:
    """Folders named ``rtclab`` that would hide the package from a Python started next to them.

    Looks in ``places`` (default: the working directory and the folder
    holding the repository). A folder only hides the package when the package
    is not itself on ``sys.path`` as a regular folder (an editable install
    made by a finder, as ``pip install -e .`` does, or no install at all).

    Examples
    --------
    >>> shadowing_folders()
    []
    """
    import rtclab

    package = Path(rtclab.__file__ or ".").resolve().parent
    if places is None:
        places = [Path.cwd(), package.parent.parent]
    here = {os.path.abspath(p) for p in ("", ".", os.getcwd())}
    on_path = [p for p in sys.path if p and os.path.abspath(p) not in here]
    spec = importlib.machinery.PathFinder.find_spec("rtclab", on_path)
    if spec is not None and spec.origin and spec.origin.endswith("__init__.py"):
        return []  # a regular package on sys.path wins over any namespace folder
    out: list[Path] = []
    for place in dict.fromkeys(Path(p).resolve() for p in places):
        folder = place / "rtclab"
        if folder.is_dir() and not (folder / "__init__.py").exists() and folder.resolve() != package:
            out.append(folder)
    return out


def check_setup(*, call: bool = True) -> pd.DataFrame:
    """Check this environment for the course: one row per check, ``ok`` or what to do.

    Parameters
    ----------
    call
        Also play one simulated call (a few seconds) and check it connects.

    Returns
    -------
    pandas.DataFrame
        Columns ``check`` and ``result`` (``ok`` or the problem and its fix).

    Examples
    --------
    >>> report = check_setup(call=False)
    >>> report.set_index("check")["result"]["Python 3.11 or newer"]
    'ok'
    """
    import rtclab

    rows: list[tuple[str, str]] = []
    py = sys.version_info
    rows.append(("Python 3.11 or newer", "ok" if py >= (3, 11) else f"Python {py.major}.{py.minor}: install 3.11 or newer"))
    package_ok = getattr(rtclab, "__file__", None) is not None and hasattr(rtclab, "run")
    rows.append(("rtclab is the installed package", "ok" if package_ok else
                 "rtclab was imported from a folder without the package's code: see the next row"))
    shadows = shadowing_folders()
    rows.append(("no folder hides the package", "ok" if not shadows else
                 " ".join(_SHADOW_HINT.format(folder=f, parent=f.parent) for f in shadows)))
    from .interfaces import NoUsableAddress, usable_addresses

    try:
        usable_addresses("loopback")
        rows.append(("UDP on 127.0.0.1 (network='real')", "ok"))
    except NoUsableAddress as exc:
        rows.append(("UDP on 127.0.0.1 (network='real')", str(exc)))
    try:
        import ipywidgets  # noqa: F401

        rows.append(("ipywidgets (the call panel)", "ok"))
    except ImportError:
        rows.append(("ipywidgets (the call panel)", "missing: pip install ipywidgets"))
    if call:
        r = rtclab.run("basic", seed=1)
        rows.append(("a simulated call connects", "ok" if r.outcome == "connected" else f"{r.outcome}: {r.reason}"))
    return pd.DataFrame(rows, columns=["check", "result"])
