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
"""

import socket

from gunicorn.http.body import LengthReader
from gunicorn.workers import sync


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


class SyncWorker(sync.SyncWorker):
    def handle_request(self, listener, req, client, addr):
        super().handle_request(listener, req, client, addr)
        # Reached only when the answer was written in full (errors raise past this).
        if not self.cfg.is_ssl and body_consumed(req) and nothing_unread(client):
            # A close sends FIN, not a reset. Gunicorn's lingering close then finds the
            # socket closed and returns at once.
            client.close()
