"""``python -m hyperlobby.cli``: the same as the ``hyperlobby`` command."""

import sys

from hyperlobby.cli import main

sys.exit(main())
