"""The browser control page of ``stemstream live --web``: HTTP for the page, a WebSocket for the rest.

One TCP port (websockets' threaded server): ``GET /`` serves the page, ``/app.js`` and
``/style.css`` its script and style (files of this package: nothing is fetched from elsewhere),
``/ws`` is the WebSocket. Over it the server sends a status frame :data:`FRAME_HZ` times a second
to every page (JSON: ``{"type": "status", ...}``, the fields of
:meth:`stemstream.bridge.control.status.SessionStatus.snapshot`: stems, gains, mutes, solos,
meters, latency, CPU, deadline misses, xruns), and a page sends changes as the OSC address space's
messages, ``{"address": "/stemstream/stem/drums/gain", "args": [0.5]}``, which go through the
session's control layer (:meth:`stemstream.bridge.osc.routes.OscRoutes.dispatch`, surface
``"web"``): the same validation and refusals as OSC. A reply is sent back as ``{"type": "reply",
"address", "args"}``, a refusal as ``{"type": "error", "address", "reason", "message"}``.

Who may connect: bound to loopback (the default) the page is for this machine; requests whose
``Host`` is not a loopback name are refused (DNS rebinding), and so are WebSocket handshakes whose
``Origin`` is another site's (a page elsewhere driving the mixer through the browser). Bound to any
other address, every request needs ``?token=...`` (given, or made up at start and shown in the
URL); the page passes it on to its WebSocket. At most :data:`MAX_CLIENTS` pages at once.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stemstream.realtime.errors import bad_value

#: Default TCP port of the page.
DEFAULT_WEB_PORT: int = 9080
#: Status frames a second to each page.
FRAME_HZ: float = 15.0
#: Most pages connected at once.
MAX_CLIENTS: int = 16
#: Largest message a page may send, bytes.
MAX_MESSAGE: int = 4096
#: The page's files, by path.
STATIC: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
_STATIC_DIR = Path(__file__).with_name("static")
_LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine only."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebControl:
    """Serves the control page for a live session (see the module docstring).

    Args:
        routes: the session's control layer (``stemstream.bridge.osc.routes.OscRoutes``).
        status: what the frames show (``stemstream.bridge.control.status.SessionStatus``, with a meter
            reader of its own).
        host: bind address (loopback by default).
        port: TCP port (0: any free port; :attr:`port` says which).
        token: what ``?token=`` must be; None: none on loopback, made up on any other address.

    Attributes:
        url: the page's address (with the token where one is needed).
        frames: status frames sent (to all pages).
    """

    def __init__(self, routes: Any, status: Any, host: str = "127.0.0.1", port: int = DEFAULT_WEB_PORT,
                 token: str | None = None) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise bad_value("web_port", port, "an int in [0, 65535] (0: any free port)")
        if token is not None and (not isinstance(token, str) or len(token) < 8):
            raise bad_value("web_token", token, "a string of at least 8 characters")
        from websockets.sync import server as sync_server  # a dependency of stemstream itself
        self.routes = routes
        self.status = status
        self.loopback = is_loopback(host)
        self.token = token if token is not None else (None if self.loopback else secrets.token_urlsafe(16))
        self.frames = 0
        self._clients: set[Any] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        logger = logging.getLogger("stemstream.web")
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
        try:
            self._server = sync_server.serve(self._session, host, port, process_request=self._request,
                                             max_size=MAX_MESSAGE, logger=logger, compression=None,
                                             server_header="stemstream")
        except OSError as exc:
            raise bad_value("web_port", port, f"a free TCP port on {host} ({exc.strerror})") from None
        self.host, self.port = self._server.socket.getsockname()[:2]
        shown = socket.gethostname() if self.host in ("0.0.0.0", "::") else self.host  # where a phone finds it
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> "WebControl":
        for name, fn in (("stemstream-web", self._server.serve_forever), ("stemstream-web-frames", self._frames)):
            thread = threading.Thread(target=fn, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        with self._lock:
            clients = list(self._clients)
        for conn in clients:
            conn.close(1001, "stemstream live is stopping")
        for thread in self._threads:
            thread.join(timeout=2.0)

    @property
    def clients(self) -> int:
        """Pages connected now."""
        with self._lock:
            return len(self._clients)

    # ---- HTTP ------------------------------------------------------------------------------
    def _request(self, conn: Any, request: Any) -> Any:
        """Serve the page's files, refuse strangers, let ``/ws`` through to the handshake."""
        url = urlsplit(request.path)
        host = request.headers.get("Host", "")
        if self.loopback and not is_loopback(host.rsplit(":", 1)[0] if not host.endswith("]") else host):
            return self._text(conn, 403, "stemstream: this page answers to loopback names only")
        if self.token is not None:
            given = parse_qs(url.query).get("token", [""])[0]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return self._text(conn, 403, "stemstream: a token is required (the URL stemstream live printed)")
        if url.path == "/ws":
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != host:
                return self._text(conn, 403, "stemstream: WebSocket from another site refused")
            return None
        if url.path not in STATIC:
            return self._text(conn, 404, "stemstream: no such page")
        name, kind = STATIC[url.path]
        body = (_STATIC_DIR / name).read_bytes()
        return self._response(200, "OK", kind, body)

    def _text(self, conn: Any, status: int, text: str) -> Any:
        return self._response(status, "Forbidden" if status == 403 else "Not Found", "text/plain; charset=utf-8",
                              text.encode())

    @staticmethod
    def _response(status: int, reason: str, kind: str, body: bytes) -> Any:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
                           ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                           ("Content-Security-Policy", "default-src 'self'; connect-src 'self'; "
                            "frame-ancestors 'none'"), ("Connection", "close")])
        return Response(status, reason, headers, body)

    # ---- WebSocket -------------------------------------------------------------------------
    def _session(self, conn: Any) -> None:
        """One page: take its messages (each through the control layer) until it goes."""
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            if len(self._clients) >= MAX_CLIENTS:
                conn.close(1013, f"at most {MAX_CLIENTS} pages at once")
                return
            self._clients.add(conn)
        try:
            while not self._stop.is_set():
                try:
                    message = conn.recv(timeout=0.5)
                except TimeoutError:
                    continue
                for reply in self.handle(message):
                    conn.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._clients.discard(conn)

    def handle(self, message: str | bytes) -> list[dict[str, Any]]:
        """One message of a page -> what to send back (replies and refusals)."""
        try:
            data = json.loads(message)
            if (not isinstance(data, dict) or not isinstance(data.get("address"), str)
                    or not isinstance(data.get("args", []), list)):
                raise ValueError('expected {"address": "/stemstream/...", "args": [...]}')
        except ValueError as exc:
            refusal = self.routes.counters.refuse("", "malformed", f"not a control message ({exc})")
            return [_error(refusal)]
        outcome = self.routes.dispatch(data["address"], tuple(data.get("args", [])), surface="web")
        out = [{"type": "reply", "address": a, "args": list(v)} for a, v in outcome.replies]
        if outcome.refusal is not None:
            out.append(_error(outcome.refusal))
        return out

    def _frames(self) -> None:
        """Send every page a status frame :data:`FRAME_HZ` times a second (one snapshot for all)."""
        period = 1.0 / FRAME_HZ
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + period, time.monotonic() - period)
            with self._lock:
                clients = list(self._clients)
            if not clients:
                continue
            try:
                frame = json.dumps({"type": "status", **self.status.snapshot()})
            except Exception as exc:  # pragma: no cover - defensive: the page must not take the session down
                self.routes.counters.last_error = f"web status: {type(exc).__name__}: {exc}"
                continue
            for conn in clients:
                try:
                    conn.send(frame)
                except Exception:  # a page that went away: its handler removes it
                    pass
            self.frames += 1


def _error(refusal: Any) -> dict[str, Any]:
    return {"type": "error", "address": refusal.address, "reason": refusal.reason, "message": refusal.message}
