"""The light runtime: run an exported model directory (deploy.yml + model files) with one engine.

It needs numpy, OpenCV, PyYAML and one engine; paddle is imported only by the paddle backend.
"""

from .errors import DeployError, EngineMissingError, FormatMismatchError, InputError, SpecError
from .predictor import Predictor, compare_backends, random_inputs
from .spec import SPEC_FILE, DeploySpec, load_spec

__all__ = ["Predictor", "load_spec", "compare_backends", "random_inputs", "DeploySpec", "SPEC_FILE",
           "DeployError", "SpecError", "EngineMissingError", "FormatMismatchError", "InputError"]
