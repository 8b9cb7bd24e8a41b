"""``python -m jaxnst.weights fetch|verify|...``: the weights command, kept at its documented
name; the code is :mod:`jaxnst.model.weights`."""

import sys

from jaxnst.model.weights import main

if __name__ == "__main__":
    sys.exit(main())
