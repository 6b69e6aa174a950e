"""``python -m venom.daemon`` is the ``venom`` command."""

import sys

from venom.daemon.cli import main

sys.exit(main())
