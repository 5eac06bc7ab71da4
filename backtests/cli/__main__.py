"""``python -m flushback.backtests.cli``: the same as the ``flushback`` console script."""

import sys

from flushback.backtests.cli import main

sys.exit(main())
