"""Benchmarks and the device check: front ends that measure; may import everything below.

:mod:`~jaxnst.bench.evals` times one loss+gradient evaluation inside jaxnst's compiled loop and
counts its FLOPs; :mod:`~jaxnst.bench.speed` is ``scripts/bench.py`` (seconds per evaluation at
each size, against the matmul rate and PyTorch, :mod:`~jaxnst.bench.vs_torch`);
:mod:`~jaxnst.bench.device` is ``scripts/device_check.py``, the accelerator proof: its plan, budget
and JSON report (:mod:`~jaxnst.bench.check`), the machine and weights it runs with
(:mod:`~jaxnst.bench.machine`), and its steps (:mod:`~jaxnst.bench.steps`,
:mod:`~jaxnst.bench.device_memory`, :mod:`~jaxnst.bench.optional`). The scripts are thin front ends
over these modules, with the same command lines, outputs and JSON.
"""
