"""``python -m localckpt``: the same as the ``localckpt`` command (as ``python -m pip``
is pip), for a venv whose scripts are not on PATH."""

import sys

from .cli.main import main

sys.exit(main())
