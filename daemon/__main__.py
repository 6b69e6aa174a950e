"""``python -m venom.daemon`` is the ``venom`` command."""

import sys

from venom.daemon.cli.main import main

sys.exit(main())
