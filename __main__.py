"""Reached only by mistake: ``python -m rtclab`` run from the folder that *contains* this repository.

There, the repository folder (named ``rtclab`` by ``git clone``) hides the
installed package, so Python imports this folder instead and runs this file.
The same mistake makes ``import rtclab; rtclab.run`` fail with
"module 'rtclab' has no attribute 'run'". ``rtclab.check_setup()`` (notebook
00) looks for it too.
"""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.exit(
    f"rtclab: Python was started in {os.path.dirname(here)}, the folder that contains the repository "
    f"{here}; there the repository folder hides the installed rtclab package (and 'import rtclab' gives "
    "\"module 'rtclab' has no attribute 'run'\"). Change into the repository folder (cd "
    f"{os.path.basename(here)}) or any other folder and run the command again."
)
