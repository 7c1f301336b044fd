"""``python -m qgnb``: the ``qgnb`` command line (see `qgnb.cli`)."""

import sys

from qgnb.cli import main

sys.exit(main())
