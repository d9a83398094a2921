"""The course site: built offline by one Sphinx command from the stored notebooks, and readable in Chromium."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rtclab import browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _title(notebook: Path) -> str:
    first = json.loads(notebook.read_text())["cells"][0]
    return "".join(first["source"]).splitlines()[0].removeprefix("# ").strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("sphinx", reason="pip install -e '.[docs]' to build the course site")
    pytest.importorskip("myst_nb", reason="pip install -e '.[docs]' to build the course site")
    out = tmp_path_factory.mktemp("site")
    # the README's one command, with the output folder of this test
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", "docs", "notebooks", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "WARNING" not in done.stderr, done.stderr[-4000:]
    return out


def test_every_notebook_has_a_page_with_its_outputs_and_a_binder_link(site: Path) -> None:
    """One HTML page per notebook, holding its stored outputs (no execution) and a launch-on-Binder link to it."""
    assert len(NOTEBOOKS) >= 11
    for nb in NOTEBOOKS:
        page = (site / f"{nb.stem}.html").read_text()
        assert f'href="https://mybinder.org/v2/gh/' in page and f"urlpath=lab/tree/notebooks/{nb.stem}.ipynb" in page
        assert "cell_output" in page, nb.stem  # stored outputs are rendered
    setup = (site / "00_setup_check.html").read_text()
    assert "a simulated call connects" in setup  # the stored check_setup() table
    assert (site / "INSTRUCTORS.html").exists()


def test_the_site_fetches_nothing_from_the_internet(site: Path) -> None:
    """No page loads a script, style or font from another host (the build and the site work offline)."""
    import re

    for page in site.glob("*.html"):
        remote = re.findall(r'<(?:script|link)[^>]*(?:src|href)="(https?://[^"]*)"', page.read_text())
        assert remote == [], (page.name, remote)


def test_index_lists_every_notebook_in_chromium(site: Path) -> None:
    """Headless Chromium opens the index: every notebook is listed by its title, and the playground shows the panel's picture."""
    reason = browser.availability(isolated=False)
    if reason:
        pytest.skip(reason)

    async def look() -> dict:
        requests: list[str] = []
        async with browser.launch() as chromium:
            page = await chromium.new_page()
            page.on("request", lambda r: requests.append(r.url))
            await page.goto((site / "index.html").as_uri())
            links = await page.eval_on_selector_all(
                ".body li.toctree-l1 > a", "as => as.map(a => [a.getAttribute('href'), a.textContent.trim()])")
            await page.goto((site / "09_playground.html").as_uri())
            pictures = await page.eval_on_selector_all(
                ".cell_output img", "is => is.filter(i => i.complete && i.naturalWidth > 100).length")
            await page.close()
        return {"links": links, "pictures": pictures, "requests": requests}

    seen = asyncio.run(look())
    listed = {href: text for href, text in seen["links"]}
    for nb in NOTEBOOKS:
        assert listed.get(f"{nb.stem}.html") == _title(nb), (nb.stem, listed)
    assert listed.get("INSTRUCTORS.html") == "For instructors"
    assert seen["pictures"] >= 1  # the call panel's picture (and the plots)
    assert all(u.startswith(("file://", "data:")) for u in seen["requests"]), seen["requests"]
