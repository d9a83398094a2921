"""``python -m rtclab.conformance {list,record,table,check}`` (see :mod:`rtclab.conformance`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
