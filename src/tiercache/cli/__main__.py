"""``python -m tiercache.cli``: the ``tiercache`` command."""

import sys

from tiercache.cli.main import main

sys.exit(main())
