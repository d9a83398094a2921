"""Sphinx configuration of the course site: the notebooks, rendered with their stored outputs.

Build (one command, offline, from the repository root; ``pip install -e ".[docs]"``)::

    python -m sphinx -b html -c docs notebooks build/site

The source folder is ``notebooks/`` itself (its ``index.md`` is the home page),
so the site shows exactly the committed notebooks: nothing is executed
(``nb_execution_mode = "off"``). Every notebook page links to Binder, which
opens that notebook in JupyterLab (``binder/`` holds the learners' environment).
The theme is Sphinx's own (alabaster): no file is fetched from the internet.
"""

from __future__ import annotations

project = "rtclab: see WebRTC negotiation happen"
author = "rtclab"
copyright = "rtclab authors, MIT licence"

extensions = ["myst_nb"]
root_doc = "index"
smartquotes = False  # titles and code-like text exactly as in the notebooks
exclude_patterns = ["src", "**/.ipynb_checkpoints", "_build", "README.md"]

# the stored outputs are the lesson (checked by nbval): never re-run them here
nb_execution_mode = "off"
# without a kernel a widget has no state to show: use the picture stored beside it
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js: dict[str, dict[str, str]] = {}  # (their JavaScript would come from a CDN)
myst_enable_extensions = ["colon_fence"]

html_theme = "alabaster"
html_title = "rtclab course"
html_static_path: list[str] = []
templates_path = ["_templates"]
html_theme_options = {"fixed_sidebar": True, "page_width": "1180px", "sidebar_width": "240px"}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}

#: The repository on GitHub that Binder builds (set it to the published repository's address).
repository = "https://github.com/OWNER/rtclab"
binder = "https://mybinder.org/v2/gh/" + repository.removeprefix("https://github.com/") + "/HEAD"
html_context = {"binder": binder}
