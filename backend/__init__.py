"""The face-normals backend: estimator, command line, and (later) the ZeroMQ service."""
__version__ = "0.1.0"
