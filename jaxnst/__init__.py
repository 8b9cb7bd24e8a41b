"""jaxnst: Gatys et al. neural style transfer in JAX, with the descent loop compiled."""

from jaxnst.feedforward import apply_style, load_model, train_styles
from jaxnst.objective import Objective, objective
from jaxnst.stylize import (
    Options,
    Result,
    features,
    reconstruct_content,
    stylize,
    synthesize_texture,
)
from jaxnst.video.api import stylize_video as stylize_video  # video (Ruder et al.)

__all__ = [
    "Objective",
    "Options",
    "Result",
    "apply_style",
    "features",
    "load_model",
    "objective",
    "reconstruct_content",
    "stylize",
    "synthesize_texture",
    "train_styles",
]
__version__ = "0.1.0"
