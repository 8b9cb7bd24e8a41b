"""VGG19's convolution layers by name: five blocks of 2, 2, 4, 4 and 4 convolutions
(``conv1_1`` ... ``conv5_4``), 64 to 512 channels wide, each block after the first starting with
a 2x2 pooling. :mod:`jaxnst.model.vgg` builds the network from these; :mod:`jaxnst.model.convs`
sizes its convolutions with them."""

BLOCKS = (2, 2, 4, 4, 4)
LAYERS = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(BLOCKS) for i in range(n))
CHANNELS = (64, 128, 256, 512, 512)
