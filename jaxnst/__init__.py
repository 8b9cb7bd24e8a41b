"""jaxnst: Gatys et al. neural style transfer in JAX, with the descent loop compiled."""
from jaxnst.stylize import (Options, Result, features, reconstruct_content, stylize,
                             synthesize_texture)

__all__ = ["Options", "Result", "features", "reconstruct_content", "stylize",
           "synthesize_texture"]
__version__ = "0.1.0"
