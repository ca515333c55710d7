"""The wire protocol and the client of the face-normals service.

Pure Python + pyzmq + numpy: the Blender add-on bundles this package as it is (it never imports
torch or the rest of the backend), and the server imports the same `protocol` module, so the
protocol is written down once.  Keep every import in here relative."""
from .client import Batch, Client, Request, ServerError, ServerUnavailable
from .protocol import PROTOCOL_VERSION

__all__ = ["Batch", "Client", "Request", "ServerError", "ServerUnavailable", "PROTOCOL_VERSION"]
