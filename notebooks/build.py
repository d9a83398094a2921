"""Build the course notebooks from their sources and execute them in place.

Each ``notebooks/src/NN_name.py`` defines ``CELLS``: a list of ``md(text)`` and
``code(source)`` cells. ``python notebooks/build.py [NN ...]`` writes
``notebooks/NN_name.ipynb`` and executes it (outputs stored, as nbval needs),
so a change in rtclab's behaviour is one command away from fresh outputs:
``pytest`` (strict nbval) then fails until the notebooks are rebuilt and the
diff is reviewed.

Maintainers may also edit the .ipynb files in JupyterLab directly; the sources
are a convenience, not a requirement.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(_dedent(text))


def code(source: str, *, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(_dedent(source))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).strip("\n")


def build(src: Path, *, execute: bool = True) -> Path:
    spec = importlib.util.spec_from_file_location(src.stem, src)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[src.stem] = module
    spec.loader.exec_module(module)
    nb = nbformat.v4.new_notebook()
    nb.cells = list(module.CELLS)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = HERE / f"{src.stem}.ipynb"
    if execute:
        t = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
        print(f"executed {out.name} in {time.perf_counter() - t:.1f} s")
    for i, cell in enumerate(nb.cells):  # stable files: no execution timestamps, ids by position (not random)
        cell.id = f"cell-{i:03d}"
        cell.metadata.pop("execution", None)
        # solutions out of sight: each "## ..." section but the summary starts folded in JupyterLab
        # (click ▸ to open); the cells stay in the file, so nbval still runs and checks every one
        if getattr(module, "COLLAPSED_SECTIONS", False) and cell.cell_type == "markdown" and cell.source.startswith("## ") \
                and not cell.source.startswith("## Summary"):
            cell.metadata["jp-MarkdownHeadingCollapsed"] = True
    nbformat.write(nb, out)
    return out


def main(argv: list[str]) -> int:
    sources = sorted((HERE / "src").glob("[0-9][0-9]_*.py"))
    if argv:
        sources = [s for s in sources if any(s.stem.startswith(a) for a in argv)]
    for src in sources:
        build(src)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main(sys.argv[1:]))
