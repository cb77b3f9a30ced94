"""``python -m bench``: the side-by-side benchmark of dockyard against CNCF Distribution (bench/sidebyside)."""

import sys

from bench.sidebyside.cli import main

sys.exit(main())
