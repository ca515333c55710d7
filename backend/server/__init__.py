"""`python -m backend serve`: the estimator behind a ZeroMQ ROUTER socket (protocol: backend.client.protocol)."""
from .app import Server, ServerStartError
from .security import CurveKeys, is_loopback

__all__ = ["Server", "ServerStartError", "CurveKeys", "is_loopback"]
