"""The request id of security events: made when a request's first event needs it, the
same for every event of that request, or taken from a well-formed X-Request-ID."""

import logging
import re

import pytest

from portal.logs import request_context, security_log
from portal.middleware import begin_request


def events(caplog):
    return [record.security for record in caplog.records if hasattr(record, "security")]


@pytest.mark.parametrize(
    ("supplied", "expected"),
    [(None, None), ("gw-req.42", "gw-req.42"), ("bad id!", None), ("", None)],
)
def test_every_event_of_a_request_carries_one_id(caplog, supplied, expected):
    meta = {"REMOTE_ADDR": "198.51.100.9"}
    if supplied is not None:
        meta["HTTP_X_REQUEST_ID"] = supplied
    reset = begin_request(meta)
    try:
        with caplog.at_level(logging.INFO):
            security_log("authz_fail", path="/a")
            security_log("authz_fail", path="/b")
    finally:
        request_context.reset(reset)
    first, second = events(caplog)
    assert first["request_id"] == second["request_id"]
    if expected is None:
        assert re.fullmatch(r"[0-9a-f]{32}", first["request_id"])
    else:
        assert first["request_id"] == expected


def test_two_requests_get_two_ids(caplog):
    ids = []
    for _ in range(2):
        reset = begin_request({"REMOTE_ADDR": "198.51.100.9"})
        try:
            with caplog.at_level(logging.INFO):
                security_log("authz_fail", path="/a")
        finally:
            request_context.reset(reset)
        ids.append(events(caplog)[-1]["request_id"])
    assert ids[0] != ids[1]


def test_outside_a_request_an_event_has_no_id(caplog):
    with caplog.at_level(logging.INFO):
        security_log("authz_fail", path="/a")
    assert "request_id" not in events(caplog)[-1]
