"""``python -m qgnb``: the ``qgnb`` command line (see `qgnb.cli`)."""

import sys

from qgnb.cli import main

if __name__ == "__main__":
    sys.exit(main())
