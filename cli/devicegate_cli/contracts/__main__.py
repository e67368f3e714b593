"""`python -m devicegate_cli.contracts` (what `./run contracts` runs)."""

import sys

from devicegate_cli.contracts import main

sys.exit(main())
