"""Who may talk to the server: loopback needs nothing; any other address needs CURVE keys."""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from ..client.protocol import is_loopback as is_loopback   # who may talk to it without keys


@dataclasses.dataclass(frozen=True)
class CurveKeys:
    """The server's secret key file and a folder of the public keys of the clients it admits."""
    server_secret: Path
    clients: Path

    def apply(self, context: zmq.Context, socket: zmq.Socket) -> ThreadAuthenticator:
        if not self.clients.is_dir() or not list(self.clients.glob("*.key")):
            raise ValueError(f"{self.clients}: no client public keys (*.key) to admit")
        public, secret = zmq.auth.load_certificate(str(self.server_secret))
        if secret is None:
            raise ValueError(f"{self.server_secret}: not a secret key file (*.key_secret)")
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve(domain="*", location=str(self.clients))
        socket.curve_secretkey, socket.curve_publickey, socket.curve_server = secret, public, True
        return authenticator


def make_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public: give it to the other side) and NAME.key_secret (keep it: only
    its owner may read it, mode 0600).  Both are made in a private temporary folder and moved
    in, so the secret is never readable by others, not even for a moment."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".keys-") as private:   # mode 0700
        public, secret = map(Path, zmq.auth.create_certificates(private, name))
        public.chmod(0o644)
        secret.chmod(0o600)
        return Path(shutil.move(public, folder / public.name)), Path(shutil.move(secret, folder / secret.name))
