"""Face photo -> camera-space normal map (the networks, detection, image I/O and the pipeline)."""
from .image_io import ImageError, read_image
from .pipeline import Estimator, NoFaceError, NormalMap, Photo, PhotoError, Result
from .weights import DEFAULT_WEIGHTS, WeightsError

__all__ = ["Estimator", "Photo", "Result", "PhotoError", "NormalMap", "NoFaceError", "ImageError",
           "WeightsError", "read_image", "DEFAULT_WEIGHTS"]
