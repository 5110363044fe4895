"""A strict reader of the plainest HTTP/1.x requests, for the gateway check paths only.

gunicorn's request parser handles everything HTTP/1.1 allows (and refuses, carefully,
much that it does not): chunked bodies, 100-continue, proxy protocol, trusted proxies'
scheme headers, obsolete line folding, repeated fields. For a gateway's check, a
request is almost always the same plain shape: a request line, a handful of headers,
perhaps a short form body, all in the first packet. Parsing it with gunicorn costs a
sync worker more than answering it does (py-spy, bench/RESULTS.md).

``Reader.read`` accepts only that plain shape, and only for the check paths, *peeked*
from the socket (nothing is consumed): any doubt, and it returns None and gunicorn
parses the request as usual. It accepts a request only if:

- the request line is ``GET``, ``HEAD`` or ``POST``, a target of unreserved and
  sub-delimiter characters only (no ``%``, no ``#``) whose path is one of the check
  paths exactly, and ``HTTP/1.0`` or ``HTTP/1.1``;
- every header line is a name of letters, digits and ``-`` (no ``_``: gunicorn's
  ``header_map``), a colon, and a value of visible ASCII, spaces and tabs; no field
  twice; none of ``Transfer-Encoding``, ``Expect``, or the scheme and forwarder headers
  that gunicorn trusts from some peers (``secure_scheme_headers``,
  ``forwarder_headers``): their meaning depends on gunicorn's policy;
- lines end in CRLF; gunicorn's limits on the request line, the fields and their
  number hold;
- the body is exactly ``Content-Length`` bytes (digits only, no more of them than
  ``PEEK`` has: a longer value, thousands of digits even, is gunicorn's to refuse; none
  means no body), and nothing follows it.

``Reader.environ`` then makes the environ gunicorn's ``wsgi.create`` makes for such a
request (``tests/serving/test_reader.py`` holds the two equal for whatever Hypothesis sends,
and the e2e tests compare whole answers with gunicorn's own worker). It serves plain
HTTP (gunicorn's ``http`` protocol, its Python parser) on a TCP socket, without TLS,
proxy protocol, a ``SCRIPT_NAME`` in the server's environment, access log, metrics
(statsd) or request hooks: ``usable`` says when.
"""

import errno
import io
import os
import re
from typing import NamedTuple

from gunicorn import config, glogging
from gunicorn.http import message
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.http.wsgi import WSGIErrorsWrapper, base_environ

PEEK = 8192  # the most of a request looked at: a check's request is a few hundred bytes
# A Content-Length of more digits cannot describe a body within PEEK (and int() refuses
# strings of over 4300 digits).
_LENGTH_DIGITS = len(str(PEEK))

_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST) (/[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*) HTTP/1\.([01])")
_NAME = re.compile(rb"[A-Za-z0-9-]+")
_VALUE = re.compile(rb"[\x20-\x7e\t]*")


class Request(NamedTuple):
    method: str
    target: str
    path: str
    query: str
    version: tuple[int, int]
    headers: list[tuple[str, str]]  # names upper-cased, as gunicorn keeps them
    body: bytes
    size: int  # bytes of the request, body included


def usable(cfg, log) -> bool:
    """Whether requests this server takes may be read here (else gunicorn reads them all):
    only where gunicorn would do nothing more with them than parse them with its Python
    parser (the one ``tests/serving/test_reader.py`` compares with) and build the environ."""
    return (
        getattr(cfg, "protocol", "http") == "http"  # not uwsgi (its allow-list, its environ)
        and not cfg.is_ssl
        and cfg.proxy_protocol in (False, "off", None)
        and not _fast_parser(cfg)
        and not os.environ.get("SCRIPT_NAME")
        and type(log).access is glogging.Logger.access  # no statsd, no logger of one's own
        and not log.access_log_enabled
        and cfg.pre_request is config.PreRequest.pre_request  # (it logs at debug level:)
        and cfg.loglevel.lower() != "debug"
        and cfg.post_request is config.PostRequest.post_request
    )


def _fast_parser(cfg) -> bool:
    """Whether gunicorn parses with gunicorn_h1c (C) rather than in Python."""
    try:
        return bool(message._check_fast_parser(cfg))
    except Exception:  # asked for, but unusable: gunicorn will say so; not ours to read
        return True


class Reader:
    def __init__(self, cfg, paths):
        self.paths = frozenset(path.encode("ascii") for path in paths)
        self.refused = frozenset(
            {
                "TRANSFER-ENCODING",
                "EXPECT",
                *(name.upper() for name in cfg.secure_scheme_headers),
                *(name.upper() for name in cfg.forwarder_headers),
            }
        )
        # gunicorn's limits, as its Request and Message clamp them (0: no limit on the line).
        line = cfg.limit_request_line
        self.line_limit = MAX_REQUEST_LINE if line < 0 or line >= MAX_REQUEST_LINE else line
        fields = cfg.limit_request_fields
        self.fields_limit = MAX_HEADERS if fields <= 0 or fields > MAX_HEADERS else fields
        field = cfg.limit_request_field_size
        self.field_limit = field if field > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
        self.cfg = cfg
        self.base = base_environ(cfg)

    def read(self, data: bytes) -> Request | None:
        """The request at the start of ``data`` if it is complete, plain and for a check
        path (module docstring), else None."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = data[:end].split(b"\r\n")
        first = lines[0]
        if 0 < self.line_limit < len(first):
            return None
        match = _REQUEST_LINE.fullmatch(first)
        if match is None:
            return None
        method, target, minor = match.groups()
        path, _, query = target.partition(b"?")
        if path not in self.paths or len(lines) - 1 > self.fields_limit:
            return None
        headers, seen, length = [], set(), 0
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or _NAME.fullmatch(name) is None or _VALUE.fullmatch(value) is None:
                return None
            if self.field_limit < len(line) + 2:
                return None
            name = name.decode("ascii").upper()
            if name in seen or name in self.refused:
                return None
            seen.add(name)
            value = value.strip(b" \t").decode("ascii")
            if name == "CONTENT-LENGTH":
                if not value.isdigit() or len(value) > _LENGTH_DIGITS:
                    return None
                length = int(value)
            headers.append((name, value))
        size = end + 4 + length
        if len(data) != size:  # the body not all here yet, or more after it
            return None
        return Request(
            method.decode("ascii"),
            target.decode("ascii"),
            path.decode("ascii"),
            query.decode("ascii"),
            (1, int(minor)),
            headers,
            data[end + 4 :],
            size,
        )

    def environ(self, request: Request, sock, client: tuple, server: tuple) -> dict:
        """What gunicorn's ``wsgi.create`` makes of ``request`` (without ``wsgi.early_hints``,
        which no check answer sends), for a TCP client and server."""
        environ = dict(self.base)
        environ.update(
            {
                "wsgi.errors": WSGIErrorsWrapper(self.cfg),  # the log's streams of now
                "wsgi.input": io.BytesIO(request.body),
                "gunicorn.socket": sock,
                "REQUEST_METHOD": request.method,
                "QUERY_STRING": request.query,
                "RAW_URI": request.target,
                "SERVER_PROTOCOL": f"HTTP/{request.version[0]}.{request.version[1]}",
            }
        )
        for name, value in request.headers:
            if name == "CONTENT-TYPE":
                environ["CONTENT_TYPE"] = value
            elif name == "CONTENT-LENGTH":
                environ["CONTENT_LENGTH"] = value
            else:
                environ["HTTP_" + name.replace("-", "_")] = value
        environ["wsgi.url_scheme"] = "http"
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1])
        environ["PATH_INFO"] = request.path
        environ["SCRIPT_NAME"] = ""
        return environ


def consume(sock, size: int) -> None:
    """Read and drop the ``size`` bytes that were peeked."""
    while size > 0:
        chunk = sock.recv(min(size, 65536))
        if not chunk:  # (a reset drops what was peeked)
            raise ConnectionResetError(errno.ECONNRESET, "the client went away")
        size -= len(chunk)
