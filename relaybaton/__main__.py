"""``python -m relaybaton``: the same as the ``relaybaton`` command."""

import sys

from relaybaton.cli import main

sys.exit(main())
