"""The surroundings Set Up Backend meets on real machines, made for real by the tests: a Python
whose venv module cannot install pip (Debian's and Ubuntu's without python3-venv), and an HTTPS
package index whose certificate no system trusts (what pip sees behind a proxy that inspects
HTTPS).  Used by tests/addon (the bpy module) and tests/window (a real window)."""
from __future__ import annotations

import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


DEBIAN_VENV = '''"""venv as a Debian or Ubuntu without python3-venv has it: asked for pip, it refuses."""
import importlib.util
import os
import sys
import sysconfig

_spec = importlib.util.spec_from_file_location(
    "_stdlib_venv", os.path.join(sysconfig.get_path("stdlib"), "venv", "__init__.py"))
_stdlib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stdlib)
globals().update({name: value for name, value in vars(_stdlib).items() if not name.startswith("__")})


class EnvBuilder(_stdlib.EnvBuilder):
    def create(self, env_dir):
        if self.with_pip:
            print("The virtual environment was not created successfully because ensurepip is not\\n"
                  "available.  On Debian/Ubuntu systems, you need to install the python3-venv\\n"
                  "package using the following command.")
            sys.exit(1)
        super().create(env_dir)


_stdlib.EnvBuilder = EnvBuilder       # what venv.main() (python -m venv) builds with
'''


def python_without_ensurepip(folder: Path) -> Path:
    """A `python` command (a shell script) running this machine's Python as a Debian or Ubuntu
    without python3-venv has it: `import ensurepip` fails, and `-m venv DIR` refuses with Debian's
    message (`-m venv --without-pip DIR` works)."""
    shadow = folder / "debian_without_python3_venv"
    for name in ("ensurepip", "venv"):
        (shadow / name).mkdir(parents=True, exist_ok=True)
    (shadow / "ensurepip" / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'ensurepip\'", name="ensurepip")\n')
    (shadow / "venv" / "__init__.py").write_text(DEBIAN_VENV)
    (shadow / "venv" / "__main__.py").write_text("import sys\nfrom . import main\nsys.exit(main())\n")
    real = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    script = folder / "python-without-ensurepip"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{shadow}" exec "{real}" "$@"\n')
    script.chmod(0o755)
    return script


class _Index(http.server.BaseHTTPRequestHandler):
    """An empty simple index: every project is unknown (404); the paths asked are recorded."""

    def do_GET(self) -> None:       # noqa: N802 (http.server's name)
        self.server.asked.append(self.path)     # type: ignore[attr-defined]
        self.send_error(404, "no such project")

    def log_message(self, *args) -> None:
        pass


@contextmanager
def untrusted_https_index(folder: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An HTTPS package index on a free loopback port whose certificate is self-signed (made with
    the openssl CLI): (its /simple URL, the certificate file - the "CA bundle" that makes it
    trusted -, the paths clients got past the TLS handshake to ask for)."""
    cert, key = folder / "index-cert.pem", folder / "index-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    server.asked = []               # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/simple", cert, server.asked  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
