"""The gunicorn worker the portal is served with: gunicorn's sync worker, closing promptly.

Since gunicorn 27 a sync worker ends every connection with a lingering close
(``gunicorn.util.close_graceful``, after RFC 9112 §9.6): it half-closes, then waits,
up to 2 s, until the client closes its side too. The linger matters when request data
is still unread, since closing a socket with unread data makes the kernel answer with a
reset, which can destroy the response before the client has read it. But the wait is
a full round trip to the client (or to nginx) on every request, and a sync worker
serves nobody else meanwhile: with a gateway calling ``/gateway/auth`` on every API
request, half of a worker's time went to waiting (bench/RESULTS.md).

``SyncWorker`` closes at once when nothing is left unread: the request's body was read
to its end and nothing more has arrived, so the close sends a FIN, as gunicorn's sync
worker did before version 27. Any other way out of a request (a body left unread, a
chunked body, data after the request, an error, TLS) keeps gunicorn's lingering close.
(Bytes a client sends after its answer, pipelining against our ``Connection: close``,
can still meet a reset, as they could before gunicorn 27.) Served with it by
``gunicorn.conf.py`` at the project's root.

**Gateway checks read and written whole.** A WSGI answer goes out through gunicorn's
generic machinery: ``start_response`` checks and sorts every header, the status line
and headers are formatted (with a freshly formatted date) and sent, then the body is
sent, a second write; and before that, gunicorn's parser has read the request. When
the application is the portal's (``tokens.fastpath.GatewayFastPath``):

- a plain request for a gateway check path is read by ``portal.serving.reader`` (peeked
  first; anything else is left to gunicorn's parser, unread), and answered by the fast
  path's ``answer`` (``handle_plain``);
- a request for such a path that gunicorn parsed gets the same ``answer``
  (``handle_check``);

and either way ``write_whole`` sends the answer in one write, with the bytes gunicorn
would send for a check's answer (the same status and header checks, hop-by-hop
headers dropped, no body for HEAD, no more body than its Content-Length). Every other
request is gunicorn's, untouched.
"""

import errno
import socket
import time
from datetime import datetime

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.http.body import LengthReader
from gunicorn.http.message import TOKEN_RE
from gunicorn.workers import sync

from portal.serving import reader


def body_consumed(req) -> bool:
    """Whether the request's body (none counts) was read to its end without an error."""
    body = getattr(req, "body", None)
    if body is None:
        return True
    reader = getattr(body, "reader", None)
    return not body.failed and isinstance(reader, LengthReader) and reader.length == 0


def nothing_unread(client: socket.socket) -> bool:
    """Whether the kernel holds no unread data from the client (its end of stream aside)."""
    try:
        data = client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True  # nothing has arrived
    except OSError:
        return False  # let the lingering close deal with a broken connection
    return data == b""  # b"": the client has closed its side already


_valid_headers: set = set()


def checked_headers(headers) -> list[tuple[str, str]]:
    """``headers`` as gunicorn's ``Response.process_headers`` keeps them: names and values
    checked (no CR, LF or other control character: a ``ValueError`` otherwise), values
    stripped of outer blanks, hop-by-hop headers dropped. A header seen valid before is
    not checked again (a gateway's answers repeat a few dozen headers)."""
    kept = []
    for header in headers:
        if header not in _valid_headers:
            name, value = header
            if not (isinstance(name, str) and TOKEN_RE.fullmatch(name)):
                raise ValueError(f"Invalid response header name {name!r}")
            if not (isinstance(value, str) and wsgi.HEADER_VALUE_RE.fullmatch(value)):
                raise ValueError(f"Invalid value of response header {name!r}")
            if util.is_hoppish(name):
                continue
            header = (name, value.strip(" \t"))
            if len(_valid_headers) < 4096:
                _valid_headers.add(header)
        kept.append(header)
    return kept


_date = (0, "")


def http_date() -> str:
    """gunicorn's ``Date`` header value, formatted once a second rather than per answer."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, util.http_date(now))
    return _date[1]


def write_whole(sock, method: str, version: tuple, status: str, headers, body: bytes):
    """Send a whole answer in one write, as gunicorn's ``Response`` would send it when
    closing the connection (the sync worker always does); ``(status code, headers
    sent, body bytes sent)``."""
    if not (isinstance(status, str) and wsgi.STATUS_RE.fullmatch(status)):
        raise ValueError(f"Invalid status {status!r}")
    code = int(status[:3])
    kept = checked_headers(headers)
    if code == 204 or 100 <= code < 200:  # RFC 9110: no Content-Length
        kept = [header for header in kept if header[0].lower() != "content-length"]
    if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
        body = b""
    for name, value in kept:  # never more than the answer says it has (as gunicorn)
        if name.lower() == "content-length":
            body = body[: int(value)]
    head = "".join(
        [
            f"HTTP/{version[0]}.{version[1]} {status}\r\nServer: {wsgi.SERVER}\r\n",
            f"Date: {http_date()}\r\nConnection: close\r\n",
            *[f"{name}: {value}\r\n" for name, value in kept],
            "\r\n",
        ]
    )
    sock.sendall(head.encode("latin-1") + body)
    return code, kept, len(body)


def write_answer(resp: wsgi.Response, status: str, headers, body: bytes) -> None:
    """``write_whole`` through gunicorn's ``resp``, recording on it what gunicorn's access
    log reads (status, headers, bytes sent); the status first, as ``start_response``
    does, so that a write that fails is logged with its status."""
    resp.status = status
    resp.status_code = int(status[:3]) if status[:3].isdigit() else None
    code, kept, sent = write_whole(
        resp.sock, resp.req.method, resp.req.version, status, headers, body
    )
    resp.headers, resp.headers_sent, resp.sent = kept, True, sent


class SyncWorker(sync.SyncWorker):
    def load_wsgi(self):
        super().load_wsgi()
        # The portal's application answers gateway checks whole (tokens.fastpath).
        self.takes = getattr(self.wsgi, "takes", None)
        self.reader = None
        if self.takes is not None and reader.usable(self.cfg, self.log):
            self.reader = reader.Reader(self.cfg, self.wsgi.paths)

    def handle(self, listener, client, addr):
        if self.reader is None or not self.handle_plain(listener, client, addr):
            super().handle(listener, client, addr)

    def handle_plain(self, listener, client, addr) -> bool:
        """Answer a plain gateway check read by ``portal.serving.reader`` (peeked: nothing
        is consumed until the answer is ready); False, with nothing read, leaves the
        connection to gunicorn's parser."""
        try:
            data = client.recv(reader.PEEK, socket.MSG_PEEK)
            request = self.reader.read(data)
            if request is None or not isinstance(addr, tuple):
                return False
            server = listener.getsockname()
            if not isinstance(server, tuple):
                return False
            answer = self.wsgi.complete_answer(self.reader.environ(request, client, addr, server))
            if answer is None:  # for Django after all (a redirect to HTTPS)
                return False
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            reader.consume(client, request.size)
            write_whole(client, request.method, request.version, *answer)
        except OSError as error:  # as gunicorn's handle: a client gone is no error
            if error.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
            util.close_graceful(client)
            return True
        except BaseException as error:  # as gunicorn's handle (a timeout's SystemExit too)
            self.handle_error(None, client, addr, error)
            util.close_graceful(client)
            return True
        if nothing_unread(client):
            client.close()
        else:
            util.close_graceful(client)
        return True

    def handle_request(self, listener, req, client, addr):
        if self.takes is not None and self.takes(req.path):
            self.handle_check(listener, req, client, addr)
        else:
            super().handle_request(listener, req, client, addr)
        # Reached only when the answer was written in full (errors raise past this).
        if not self.cfg.is_ssl and body_consumed(req) and nothing_unread(client):
            # A close sends FIN, not a reset. Gunicorn's lingering close then finds the
            # socket closed and returns at once.
            client.close()

    def handle_check(self, listener, req, client, addr):
        """gunicorn's ``handle_request`` (hooks, request count, access log, errors), for a
        request the application may answer whole; if it does not, its WSGI call."""
        environ, resp = {}, None
        try:
            self.cfg.pre_request(self, req)
            started = datetime.now()
            resp, environ = wsgi.create(req, client, addr, listener.getsockname(), self.cfg)
            resp.force_close()
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            answer = self.wsgi.complete_answer(environ)
            respiter = None
            try:
                if answer is not None:
                    write_answer(resp, *answer)
                else:
                    respiter = self.wsgi(environ, resp.start_response)
                    if isinstance(respiter, environ["wsgi.file_wrapper"]):
                        resp.write_file(respiter)
                    else:
                        for item in respiter:
                            resp.write(item)
                    resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - started)
                if hasattr(respiter, "close"):
                    respiter.close()
        except OSError:
            raise  # the connection is gone: sync.SyncWorker.handle deals with it
        except (Exception, SystemExit):
            if resp and resp.headers_sent:  # too late for an error page (as gunicorn)
                self.log.exception("Error handling request")
                util.close_graceful(client)
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
