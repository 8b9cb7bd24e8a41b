"""Instant styles: feed-forward networks trained once on jaxnst's own objective (Johnson, Alahi &
Fei-Fei 2016; Ulyanov et al.'s instance norm; Dumoulin, Shlens & Kudlur 2017's conditional
instance norm), then applied in milliseconds per photo.

:mod:`~jaxnst.feedforward.network` (the Flax module), :mod:`~jaxnst.feedforward.data` (photos to
batches on a background thread), :mod:`~jaxnst.feedforward.steps` (the compiled training chunk),
:mod:`~jaxnst.feedforward.train` (:func:`train_styles`), :mod:`~jaxnst.feedforward.model_file`
(the ``.jaxnst`` file), :mod:`~jaxnst.feedforward.apply` (:func:`apply_style`). At the pipeline's
level: it imports the pipeline, optim, loss and model layers, and only the API and the front ends
import it.
"""

from jaxnst.feedforward.apply import apply_style
from jaxnst.feedforward.model_file import Model, ModelError, load, save
from jaxnst.feedforward.model_file import load as load_model
from jaxnst.feedforward.train import TrainDiverged, TrainResult, train_styles

__all__ = [
    "Model",
    "ModelError",
    "TrainDiverged",
    "TrainResult",
    "apply_style",
    "load",
    "load_model",
    "save",
    "train_styles",
]
