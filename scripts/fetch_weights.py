#!/usr/bin/env python
"""Fetch, verify and convert the VGG19 weights (same as: python -m jaxnst.weights fetch)."""

import sys

from jaxnst.model.weights import main

if __name__ == "__main__":
    sys.exit(main(["fetch", *sys.argv[1:]]))
