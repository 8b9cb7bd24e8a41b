#!/usr/bin/env python
"""Stylize an image: python scripts/stylize.py CONTENT STYLE -o OUT.png (see --help)."""

import sys

from jaxnst.cli.command import main

if __name__ == "__main__":
    sys.exit(main())
