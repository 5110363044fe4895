"""The same interface as ``portal.cache.resp.RespClient``, built on redis-py: a measurement
switch only (``TOKEN_PORTAL_REDIS_CLIENT=redis-py``, bench/RESULTS.md session 5).

One ``redis.Redis`` (hiredis parser, one connection pool per process) and, per call, a
pipeline without MULTI. The commands arrive encoded as RESP arrays: hiredis reads them
back into arguments. Replies are Redis's own (no response callbacks), as RespClient's.
"""

import threading

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from portal.cache.resp import _INFO_REPLICATION, _INFO_SERVER, server_epoch


def _arguments(commands: list[bytes]) -> list[list[bytes]]:
    reader = hiredis.Reader()
    reader.feed(b"".join(commands))
    return [reader.gets() for _ in commands]


class RedisPyClient:
    def __init__(self, resp):
        # Where and how RespClient would connect; the local tier's subscriber uses these.
        self.address, self.setup = resp.address, resp.setup
        self.timeout, self.connect_timeout = resp.timeout, resp.connect_timeout
        auth = _arguments(self.setup)
        username = password = None
        db = 0
        for command in auth:
            if command[0] == b"AUTH":
                username, password = (None, *command[1:])[-2:]
            elif command[0] == b"SELECT":
                db = int(command[1])
        self.redis = redis.Redis(
            host=self.address[0],
            port=self.address[1],
            db=db,
            username=username,
            password=password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.connect_timeout,
            # As RespClient: one more try after a dropped connection, none after a timeout.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            protocol=2,
        )
        self.redis.response_callbacks = {}  # Redis's replies, as RespClient returns them
        self.local = threading.local()

    def _epoch(self, connection) -> bytes | None:
        """The server epoch of ``connection``, learnt once per socket it opens."""
        sock = connection._sock
        if getattr(connection, "_tp_epoch_sock", None) is not sock:
            replies = []
            for command in (_INFO_SERVER, _INFO_REPLICATION):
                connection.send_packed_command([command])
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as error:
                    replies.append(error)
            connection._tp_epoch, connection._tp_epoch_sock = server_epoch(*replies), sock
        return connection._tp_epoch

    def execute(self, commands, *, errors: bool = False) -> list:
        """As ``RespClient.execute``."""
        pipe = self.redis.pipeline(transaction=False)
        try:
            # The connection first: its server's epoch, as RespClient learns it on connect.
            pipe.connection = self.redis.connection_pool.get_connection()
            try:
                self.local.epoch = self._epoch(pipe.connection)
            except BaseException:
                pipe.connection.disconnect()
                raise
            if callable(commands):
                commands = commands(self.local.epoch)
            for arguments in _arguments(commands):
                pipe.execute_command(*arguments)
            return pipe.execute(raise_on_error=not errors)
        finally:
            pipe.reset()

    def close(self) -> None:
        self.local.epoch = None
        self.redis.connection_pool.disconnect()
