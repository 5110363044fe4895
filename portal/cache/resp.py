"""A lean Redis client for the gateway's hot path: pipelined commands over one plain
socket per process and thread, parsed by hiredis (RESP2).

redis-py spends more CPU on a command (connection pool, retries, observability hooks)
than Redis does answering it (bench/RESULTS.md). Each connection learns, once, the
lifetime of the server it reaches (``server_epoch``), so that what it writes and reads
of the gateway's keys names that very server.
"""

import logging
import os
import re
import socket
import threading

try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis is a dependency (redis[hiredis])
    hiredis = None

logger = logging.getLogger(__name__)


def _encode(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


_INFO_SERVER = _encode("INFO", "server")
_INFO_REPLICATION = _encode("INFO", "replication")
_INFO_FIELD = re.compile(rb"^(\w+):(\S*)\r?$", re.MULTILINE)
_epoch_problems_logged: set = set()


def server_epoch(server, replication) -> bytes | None:
    """The lifetime of a Redis server, from its ``INFO server`` and ``INFO replication``
    replies: its ``run_id``, new at every start (from whatever snapshot) and different on
    every other server; None (logged once) when Redis will not tell it, or is not a
    primary: nothing of the gateway's is then kept in it. (Not the replication id: that
    changes without dropping connections, so processes would disagree on it.)"""
    fields = {}
    for reply in (server, replication):
        if isinstance(reply, bytes):
            fields.update(_INFO_FIELD.findall(reply))
    run_id, role = fields.get(b"run_id"), fields.get(b"role")
    problem = None
    if not run_id or not role:
        refused = next((r for r in (server, replication) if isinstance(r, Exception)), None)
        problem = f"Redis does not tell its run_id and role ({refused or 'not in INFO'})"
    elif role != b"master":
        problem = f"Redis at REDIS_URL is a {role.decode(errors='replace')}, not a primary"
    if problem is not None:
        if problem not in _epoch_problems_logged:
            _epoch_problems_logged.add(problem)
            logger.error("%s: gateway answers are not cached in it (see docs/gateway.md).", problem)
        return None
    return run_id


class RespClient:
    """Pipelined commands over one socket per process and thread (RESP2, hiredis).

    Any failure closes the socket and raises: the caller treats it as the cache being
    unreachable, and the next call connects again.
    """

    def __init__(self, host: str, port: int, db: int, username, password, timeout, connect_timeout):
        self.address = (host, port)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.setup = []
        if password is not None:
            auth = ("AUTH", username, password) if username else ("AUTH", password)
            self.setup.append(_encode(*auth))
        if db:
            self.setup.append(_encode("SELECT", db))
        self.local = threading.local()

    @classmethod
    def for_servers(cls, servers: list[str], options: dict) -> "RespClient | None":
        from redis.connection import parse_url

        if hiredis is None or len(servers) != 1:
            return None
        params = parse_url(servers[0])
        if "connection_class" in params or "path" in params:  # TLS or a Unix socket
            return None
        return cls(
            params.get("host", "localhost"),
            int(params.get("port", 6379)),
            int(params.get("db", 0) or 0),
            params.get("username"),
            params.get("password"),
            options.get("socket_timeout"),
            options.get("socket_connect_timeout"),
        )

    def _connect(self):
        self.close()
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        self.local.sock, self.local.reader = sock, hiredis.Reader()
        if self.setup:
            self._roundtrip(self.setup)  # AUTH, SELECT: the socket is used only once they pass
        self.local.epoch = server_epoch(
            *self._roundtrip([_INFO_SERVER, _INFO_REPLICATION], errors=True)
        )
        self.local.pid = os.getpid()

    def _roundtrip(self, commands: list[bytes], *, errors: bool = False) -> list:
        local = self.local
        local.sock.sendall(b"".join(commands))
        replies = []
        while len(replies) < len(commands):
            reply = local.reader.gets()
            if reply is False:
                data = local.sock.recv(65536)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                local.reader.feed(data)
                continue
            if isinstance(reply, Exception) and not errors:
                raise reply
            replies.append(reply)
        return replies

    def execute(self, commands, *, errors: bool = False) -> list:
        """The replies to ``commands``, sent together; with ``errors``, a command's error
        is its reply (every reply read, the connection kept), else it is raised.

        ``commands`` may be a function of the connection's server's ``server_epoch``
        (bytes, or None when Redis would not tell it, or is no primary) that returns
        them: what it sends then names the very server, and its time as primary, that
        answers it (``_tied``).
        """
        for attempt in (1, 2):
            reused = getattr(self.local, "pid", None) == os.getpid()
            try:
                if not reused:  # first use, or a forked child
                    self._connect()
                if callable(commands):
                    return self._roundtrip(commands(self.local.epoch), errors=errors)
                return self._roundtrip(commands, errors=errors)
            except (ConnectionError, EOFError) as error:
                self.close()
                # A kept socket that Redis closed meanwhile (restart, idle timeout): one
                # more try on a new one. (A timeout is not retried: Redis may have acted.)
                if not (reused and attempt == 1):
                    raise error
            except BaseException:
                # Also after a timeout: a late reply must never be read as the next one's.
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        sock = getattr(self.local, "sock", None)
        self.local.pid = None
        self.local.epoch = None
        self.local.sock = None
        if sock is not None:
            sock.close()


_PING = b"*1\r\n$4\r\nPING\r\n"


def _next_reply(sock, reader):
    while (reply := reader.gets()) is False:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("Redis closed the connection")
        reader.feed(data)
    return reply
