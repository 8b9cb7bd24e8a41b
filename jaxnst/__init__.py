"""jaxnst: Gatys et al. neural style transfer in JAX, with the descent loop compiled."""
from jaxnst.stylize import Options, Result, features, stylize

__all__ = ["Options", "Result", "features", "stylize"]
__version__ = "0.1.0"
