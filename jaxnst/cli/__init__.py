"""The command line: ``jaxnst`` (:mod:`~jaxnst.cli.command`: parse, load, run, write, exit codes),
its inputs (:mod:`~jaxnst.cli.inputs`) and outputs (:mod:`~jaxnst.cli.outputs`), the process set-up
(:mod:`~jaxnst.cli.runtime`: devices, several hosts, the compile cache) and ``jaxnst warmup``
(:mod:`~jaxnst.cli.warmup`).

A front end: may import the API (:mod:`jaxnst.stylize`), the pipeline and everything below;
:mod:`jaxnst.video` and :mod:`jaxnst.studio` reuse its flags and runtime set-up.
"""

from jaxnst.cli.command import entry, main

__all__ = ["entry", "main"]
