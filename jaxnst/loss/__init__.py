"""The objective's terms, as pure functions of one image: content, style (Gram or Wasserstein),
TV and temporal losses (:mod:`~jaxnst.loss.losses`), colour handling (:mod:`~jaxnst.loss.color`),
and the exact objective evaluated tile by tile (:mod:`~jaxnst.loss.tiled`).

May import :mod:`jaxnst.model`; never the descent, the pipeline or a front end.
"""
