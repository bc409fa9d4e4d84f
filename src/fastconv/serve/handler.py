"""The page's HTTP server: the standard library's threading server, a fixed
set of routes, and a strict API.

Routes::

    GET  /, /app.js, /style.css   the page (files shipped in fastconv/serve/assets)
    GET  /api/model               the model, its classes, conv1's filters, saving on/off
    POST /api/predict             a PNG body -> the reading (serve.reading.Reader.read)
    POST /api/save?label=K        a PNG body -> kept as a drawing of K (serve.drawings)

Anything else is 404, another method on a known path 405. Files are served
from a fixed table of names, never from a path the request builds, so no
``..`` or absolute path can reach outside the assets. Bodies must say
``Content-Type: image/png`` and their length, at most :data:`MAX_BODY`
bytes; a body too large is refused from its header, unread. That content
type also keeps other web sites out: a browser lets a foreign page send it
only after a preflight (OPTIONS), which is refused here.
"""
import http.server
import ipaddress
import json
import socket
import urllib.parse
from http import HTTPStatus
from importlib import resources

from .drawings import DrawingFolder, LabelError
from .reading import Reader

__all__ = ["MAX_BODY", "make_server", "Handler"]

MAX_BODY = 2 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# URL path -> (asset file, content type). The only files the server reads.
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
API_GET = {"/api/model"}
API_POST = {"/api/predict", "/api/save"}
# Everything the page uses comes from here: no CDN, and no other site's code.
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")


class RequestError(Exception):
    """A bad request: answered with ``status`` and a JSON error."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _asset(name):
    return (resources.files(__package__) / "assets" / name).read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    """One request. The server carries the state: ``reader`` (a
    :class:`~fastconv.serve.reading.Reader`), ``drawings`` (a
    :class:`~fastconv.serve.drawings.DrawingFolder` or None) and ``quiet``."""

    server_version = "fastconv-serve"
    # Every answer closes its connection: a refused body is never read, and
    # must not be taken for the next request.
    protocol_version = "HTTP/1.0"
    # A request line too broken to name its version still gets a status line
    # (the base class would answer it as HTTP/0.9: a bare page, no status).
    default_request_version = "HTTP/1.0"

    # -- dispatch --------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def _dispatch(self, method):
        try:
            self._check_host()
            path, query = self._route()
            if path in ASSETS or path in API_GET:
                if method not in ("GET", "HEAD"):
                    raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed "
                                       f"on {path}: use GET")
                if path in ASSETS:
                    name, kind = ASSETS[path]
                    self._send(HTTPStatus.OK, _asset(name), kind, head=method == "HEAD")
                else:
                    self._json(HTTPStatus.OK, self._model(), head=method == "HEAD")
            elif path in API_POST:
                if method != "POST":
                    raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed "
                                       f"on {path}: use POST")
                body = self._png_body()
                if path == "/api/predict":
                    self._json(HTTPStatus.OK, self._read(body))
                else:
                    self._json(HTTPStatus.OK, self._save(query, body))
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, "no such page")
        except RequestError as exc:
            if exc.status == HTTPStatus.METHOD_NOT_ALLOWED:
                allowed = "POST" if self._route()[0] in API_POST else "GET, HEAD"
                self._json(exc.status, {"error": str(exc)}, head=method == "HEAD",
                           extra={"Allow": allowed})
            else:
                self._json(exc.status, {"error": str(exc)}, head=method == "HEAD")
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            self.log_error("error answering %s %s: %r", method, self.path, exc)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _check_host(self):
        """On a loopback address, only requests naming this server by its
        loopback name: a foreign web site whose name was made to resolve to
        127.0.0.1 (DNS rebinding) sends its own name in Host."""
        allowed = self.server.loopback_hosts
        if allowed and (self.headers.get("Host") or "").strip().lower() not in allowed:
            raise RequestError(HTTPStatus.FORBIDDEN, "this server answers only to "
                               f"{sorted(allowed)[0]}")

    def _route(self):
        """The request's path and query. The path is compared, as it came, with
        the fixed routes: ``%2e%2e`` is not decoded into anything reachable."""
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        return parts.path, query

    # -- the API ---------------------------------------------------------

    def _png_body(self):
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, "
                               "not chunked")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "the request needs a Content-Length")
        if not length.strip().isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}")
        length = int(length)
        if length > MAX_BODY:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the picture is {length} bytes; at most {MAX_BODY} are accepted")
        if kind != "image/png":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                               f"send a PNG picture (Content-Type: image/png), not {kind!r}")
        body = self.rfile.read(length)
        if len(body) != length:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is shorter than its "
                               "Content-Length")
        if not body.startswith(PNG_MAGIC):
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not a PNG picture")
        return body

    def _model(self):
        info = self.server.reader.describe()
        drawings = self.server.drawings
        info["save"] = drawings is not None
        info["saved"] = drawings.counts() if drawings is not None else {}
        return info

    def _read(self, body):
        try:
            return self.server.reader.read(body)
        except ValueError as exc:  # ImageError: not a picture, or no digit in it
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from None

    def _save(self, query, body):
        drawings = self.server.drawings
        if drawings is None:
            raise RequestError(HTTPStatus.FORBIDDEN, "saving is off: start fastconv serve with "
                               "--save-dir DIR")
        labels = query.get("label", [])
        try:
            if len(labels) != 1:
                raise LabelError("give one label, e.g. /api/save?label=3")
            drawings.label(labels[0])
        except LabelError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        try:
            self.server.reader.preprocess(body)  # a picture of a digit, or 400
        except ValueError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        try:
            saved = drawings.save(labels[0], body)
        except OSError as exc:
            raise RequestError(HTTPStatus.INTERNAL_SERVER_ERROR,
                               f"cannot save the drawing: {exc.strerror or exc}") from None
        return {"saved": saved, "saved_counts": drawings.counts()}

    # -- answers ---------------------------------------------------------

    def _json(self, status, obj, head=False, extra=None):
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json", head=head, extra=extra)

    def _send(self, status, body, kind, head=False, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """The base class's own refusals (a malformed request line, too many
        headers, a line too long) as JSON, like every other error here."""
        status = HTTPStatus(code)
        self.close_connection = True
        self._json(status, {"error": message or status.phrase})

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if not self.server.quiet:
            super().log_message(format, *args)


def make_server(network, host="127.0.0.1", port=8000, save_dir=None, model=None, quiet=False):
    """A server of the page for ``network``, bound but not yet serving.

    Parameters
    ----------
    network : Net
        The trained network (its input one gray square plane).
    host, port : str, int
        Where to listen; port 0 picks a free one. 127.0.0.1 by default: the
        page is for this machine.
    save_dir : path, optional
        Where "keep this drawing" saves (see :mod:`fastconv.serve.drawings`);
        without it saving is off.
    model : str, optional
        The model's name, shown on the page.
    quiet : bool
        Log no requests on stderr.

    Returns
    -------
    http.server.ThreadingHTTPServer
        Call ``serve_forever()`` (and ``server_close()`` after); its ``url``
        attribute is the page's address.
    """
    reader = Reader(network, model)
    drawings = DrawingFolder(save_dir, reader.classes) if save_dir is not None else None
    kind = _Server6 if ":" in host else http.server.ThreadingHTTPServer
    server = kind((host, port), Handler)
    server.daemon_threads = True
    server.reader, server.drawings, server.quiet = reader, drawings, quiet
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    server.url = f"http://{shown}:{bound_port}/"
    server.loopback_hosts = set()
    if ipaddress.ip_address(bound_host).is_loopback:
        server.loopback_hosts = {f"{name}:{bound_port}"
                                 for name in ("127.0.0.1", "localhost", "[::1]", shown)}
    return server


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
