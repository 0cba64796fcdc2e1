"""``python -m localckpt.cli``: the same as the ``localckpt`` command."""

import sys

from .main import main

sys.exit(main())
