"""`lmech serve`: the report folder over HTTP, read-only, on the loopback interface by default.

Only GET and HEAD; only files inside the folder (no `..`, no symlink leading out of it); no
directory listings (a folder answers with its index.html or 404); a Content-Security-Policy
that lets the pages load nothing but their own inline styles, data: images and scripts
from the report folder itself (the run browser's runs.js; no inline script runs).
"""

import functools
import http.server
import ipaddress
import os
import socket
import sys
from pathlib import Path

from lmech.errors import InputError

__all__ = ["is_loopback", "check_host", "make_server", "serve"]

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'self'; base-uri 'none'; "
        "form-action 'none'")


def is_loopback(host: str) -> bool:
    """True when every address the host name stands for is a loopback address (127/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_host(host: str, allow_remote: bool) -> None:
    if not allow_remote and not is_loopback(host):
        raise InputError(f"--host {host} is not a loopback address: the report would be reachable from other "
                         "machines; pass --allow-remote to mean it")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler confined to its directory, without listings."""

    server_version = "lmech-serve"
    sys_version = ""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def send_head(self):
        path = self.translate_path(self.path)  # drops '..' and absolute components
        root = os.path.realpath(self.directory)
        real = os.path.realpath(path)
        if real != root and not real.startswith(root + os.sep):  # a symlink out of the folder
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def list_directory(self, path):  # noqa: ANN001 - http.server's signature
        self.send_error(404, "Not found")
        return None

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _QuietHandler(_Handler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


def make_server(root: str | Path, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False):
    """A ThreadingHTTPServer serving root (not started); port 0 picks a free port."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"no report folder at {root}: run `lmech atlas` first")
    handler = functools.partial(_QuietHandler if quiet else _Handler, directory=str(root.resolve()))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("_Server", (http.server.ThreadingHTTPServer,), {"address_family": family,
                                                                         "daemon_threads": True})
    try:
        return server_class((host.strip("[]"), port), handler)
    except OSError as error:
        raise InputError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8000, allow_remote: bool = False,
          announce=None) -> None:
    """Serve root until interrupted; announce(url) is told the address first."""
    check_host(host, allow_remote)
    server = make_server(root, host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{server.server_address[1]}/"
    (announce or (lambda u: sys.stderr.write(f"serving {root} at {u} (Ctrl-C to stop)\n")))(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
