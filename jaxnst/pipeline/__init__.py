"""The pipeline's stages, in the order data flows: :mod:`~jaxnst.pipeline.options` (every default,
validated once), :mod:`~jaxnst.pipeline.prepare` (arrays to a Problem: colour, masks, targets),
:mod:`~jaxnst.pipeline.layout` (members, padding, devices), :mod:`~jaxnst.pipeline.descent` (the
run, with checkpoints: :mod:`~jaxnst.pipeline.checkpoint`), :mod:`~jaxnst.pipeline.collect` (device
arrays to a Result); around them coarse-to-fine (:mod:`~jaxnst.pipeline.multiscale`) and the memory
model (:mod:`~jaxnst.pipeline.memory`).

May import :mod:`jaxnst.optim`, :mod:`jaxnst.loss`, :mod:`jaxnst.model` and ``jaxnst.image_io``;
never :mod:`jaxnst.stylize` or a front end (the API composes these stages; front ends call it).
"""
