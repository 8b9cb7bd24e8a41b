"""``python -m jaxnst.cli ...``: the ``jaxnst`` command."""

from jaxnst.cli.command import entry

entry()
