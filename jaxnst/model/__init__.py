"""The network and its weights: the VGG19 Flax module (:mod:`~jaxnst.model.vgg`), its
convolution formulations (:mod:`~jaxnst.model.convs`), the converted weights file and its checksums
(:mod:`~jaxnst.model.weights`, fetched by :mod:`~jaxnst.model.fetch`).

The lowest layer: it may import only ``jaxnst._atomic`` and third-party libraries. Nothing here
knows about losses, the descent or a front end.
"""
