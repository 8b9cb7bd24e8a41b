"""``python -m jaxnst.cli ...``: the ``jaxnst`` command."""

import sys

from jaxnst.cli.command import main

sys.exit(main())
