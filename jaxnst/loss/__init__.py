"""The objective's terms, as pure functions of one image: content, style (Gram or Wasserstein),
TV and temporal losses (:mod:`~jaxnst.loss.losses`), colour handling (:mod:`~jaxnst.loss.color`),
the exact objective evaluated tile by tile (:mod:`~jaxnst.loss.tiled`), and STROTSS's terms on
sampled hypercolumns (:mod:`~jaxnst.loss.strotss`, wired in by :mod:`~jaxnst.loss.sampled`).

May import :mod:`jaxnst.model`; never the descent, the pipeline or a front end.
"""
