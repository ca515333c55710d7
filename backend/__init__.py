"""The face-normals backend: estimator, service, training, command line.  The version number
below is the one place it is written (pyproject and the add-on's manifest take it from here)."""
__version__ = "0.1.0"
