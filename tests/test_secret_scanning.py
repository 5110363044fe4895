"""POST /secret-scanning/github/: GitHub's secret scanning partner program (issue 14, item 5).

Reports are signed here as GitHub signs them (ECDSA P-256, SHA-256, base64 of the DER
signature) with keys generated per test, published in a key file of GitHub's shape, and
posted through the full middleware stack with CSRF checks enforced.
"""

import base64
import hashlib
import json
import logging
import os
import threading

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import connection
from django.test import Client

from tests.factories import PlanFactory, make_token
from tokens import crypto, services
from tokens.models import AccessToken, AuditAction, AuditEvent, LeakReport, TokenOrigin

pytestmark = pytest.mark.django_db

URL = "/secret-scanning/github/"
LEAK_URL = "https://github.com/octocat/Hello-World/blob/1234567/config.yml"


def _pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def write_key_file(path, keys: dict, current: str) -> None:
    """``keys`` ({identifier: private key}) published as GitHub publishes its keys."""
    document = {
        "public_keys": [
            {"key_identifier": key_id, "key": _pem(key), "is_current": key_id == current}
            for key_id, key in keys.items()
        ]
    }
    path.write_text(json.dumps(document))


def sign(key, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


class GitHub:
    """Posts reports as GitHub does, with the keys of ``key_file``."""

    def __init__(self, key_file):
        self.key_file = key_file
        self.keys = {
            "current-key": ec.generate_private_key(ec.SECP256R1()),
            "old-key": ec.generate_private_key(ec.SECP256R1()),
        }
        write_key_file(key_file, self.keys, current="current-key")
        self.client = Client(enforce_csrf_checks=True)

    def post(self, body, *, key_id="current-key", key=None, signature=None, client=None, **extra):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        headers = {}
        if key_id is not None:
            headers["Github-Public-Key-Identifier"] = key_id
        if signature is None and key_id is not None:
            signature = sign(key or self.keys[key_id], body)
        if signature is not None:
            headers["Github-Public-Key-Signature"] = signature
        return (client or self.client).post(
            URL, body, content_type="application/json", headers=headers, **extra
        )


@pytest.fixture
def github(tmp_path, settings):
    key_file = tmp_path / "secret_scanning_keys.json"
    github = GitHub(key_file)
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "SECRET_SCANNING_KEYS": str(key_file)}
    return github


def entry(secret, url=LEAK_URL, type_="token_portal_access_token", source="content"):
    return {"token": secret, "type": type_, "url": url, "source": source}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def events(token, action=None):
    found = AuditEvent.objects.filter(token=token)
    return list(found.filter(action=action) if action else found)


# --- A valid report ----------------------------------------------------------------------


def test_a_report_revokes_an_active_portal_token_at_once_and_marks_it_leaked(github):
    token, secret = make_token()

    response = github.post([entry(secret)])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == [
        {
            "token_hash": sha256(secret),
            "token_type": "token_portal_access_token",
            "label": "true_positive",
        }
    ]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.revoked_by == "secret scanning"
    assert token.revocation_reason == f"leaked: {LEAK_URL}"
    assert token.leaked_at is not None
    assert token.leak_url == LEAK_URL
    leak, revoke = events(token, AuditAction.LEAK_REPORTED), events(token, AuditAction.REVOKED)
    assert len(leak) == len(revoke) == 1
    assert leak[0].actor_label == revoke[0].actor_label == "secret scanning"
    assert leak[0].changes == {"leak_url": [None, LEAK_URL]}
    report = LeakReport.objects.get()
    assert (report.key_identifier, report.entries, report.true_positives) == ("current-key", 1, 1)


@pytest.mark.django_db(transaction=True)
def test_an_oauth_issued_token_is_revoked_too_and_the_gateway_refuses_it_at_once(github):
    plan = PlanFactory(api__base_path="/pay")
    token, secret = make_token(origin=TokenOrigin.OAUTH, plans=[plan])
    gateway = Client()

    def check():
        return gateway.get(
            "/gateway/auth", HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_ORIGINAL_URI="/pay/x"
        )

    assert check().status_code == 200  # its answer is cached now

    response = github.post([entry(secret)])

    assert response.json()[0]["label"] == "true_positive"
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == "secret scanning"
    assert check().status_code == 401  # the cached answer was purged after the commit


def test_labels_hashes_and_types_follow_the_report_in_order(github):
    ours, secret = make_token()
    not_ours = crypto.generate_token()  # a valid token shape, never issued here
    entries = [
        entry("not-a-token-at-all", type_="token_portal_access_token"),
        entry(secret, type_="token_portal_access_token"),
        entry(not_ours, type_="token_portal_legacy"),
        entry(secret[:-1] + ("A" if secret[-1] != "A" else "B")),  # checksum broken
    ]

    response = github.post(entries)

    assert response.status_code == 200
    assert response.json() == [
        {"token_hash": sha256(e["token"]), "token_type": e["type"], "label": label}
        for e, label in zip(
            entries,
            ["false_positive", "true_positive", "false_positive", "false_positive"],
            strict=True,
        )
    ]
    assert AccessToken.objects.get(pk=ours.pk).revoked_at is not None
    assert LeakReport.objects.get().true_positives == 1


def test_an_already_revoked_token_is_ours_but_is_not_revoked_again(github, portal_admin):
    token, secret = make_token()
    services.token_revoke(token=token, actor=portal_admin, reason="rotated")
    token.refresh_from_db()
    revoked_at = token.revoked_at

    response = github.post([entry(secret)])

    assert response.json()[0]["label"] == "true_positive"
    token.refresh_from_db()
    assert (token.revoked_at, token.revoked_by, token.revocation_reason) == (
        revoked_at,
        portal_admin.username,
        "rotated",
    )
    assert len(events(token, AuditAction.REVOKED)) == 1
    assert token.leak_url == LEAK_URL  # still worth knowing that it is public
    assert len(events(token, AuditAction.LEAK_REPORTED)) == 1


def test_an_expired_token_is_ours_marked_leaked_and_left_unrevoked(github):
    token, secret = make_token(expired=True)

    response = github.post([entry(secret)])

    assert response.json()[0]["label"] == "true_positive"
    token.refresh_from_db()
    assert token.revoked_at is None and token.leaked_at is not None


def test_the_first_reported_url_is_kept(github):
    token, secret = make_token()
    github.post([entry(secret, url="https://github.com/a/first")])

    response = github.post([entry(secret, url="https://github.com/b/second")])

    assert response.json()[0]["label"] == "true_positive"
    token.refresh_from_db()
    assert token.leak_url == "https://github.com/a/first"
    assert len(events(token, AuditAction.LEAK_REPORTED)) == 1
    assert LeakReport.objects.count() == 2


def test_a_token_reported_twice_in_one_report_is_acted_on_once(github):
    token, secret = make_token()

    response = github.post([entry(secret, url="https://x.test/1"), entry(secret, url="")])

    assert [e["label"] for e in response.json()] == ["true_positive", "true_positive"]
    token.refresh_from_db()
    assert token.leak_url == "https://x.test/1"
    assert len(events(token)) == 3  # created, reported leaked, revoked


def test_the_url_is_stored_cleaned_capped_and_without_a_secret(github):
    token, secret = make_token()
    _, other_secret = make_token()
    url = f"javascript:alert(1)//\x00\u202e?k={other_secret}&" + "x" * 5000

    github.post([entry(secret, url=url)])

    token.refresh_from_db()
    assert "\x00" not in token.leak_url and other_secret not in token.leak_url
    assert token.leak_url.startswith("javascript:alert(1)//")
    assert len(token.leak_url) <= services.leaks.LEAK_URL_MAX_LENGTH
    assert other_secret not in token.revocation_reason


def test_url_and_source_may_be_missing_or_null(github):
    token, secret = make_token()

    response = github.post([{"token": secret, "type": "t", "url": None}])

    assert response.json()[0]["label"] == "true_positive"
    token.refresh_from_db()
    assert token.revocation_reason == "leaked" and token.leak_url == ""


def test_an_empty_report_is_answered_with_an_empty_list(github):
    response = github.post([])

    assert response.status_code == 200 and response.json() == []


def test_a_report_signed_with_the_key_that_is_not_current_is_accepted(github):
    token, secret = make_token()

    response = github.post([entry(secret)], key_id="old-key")

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None


# --- A replay ----------------------------------------------------------------------------


def test_a_replayed_report_changes_nothing_twice_and_answers_the_same(github):
    token, secret = make_token()
    body = json.dumps([entry(secret), entry("nope")]).encode()
    first = github.post(body)
    token.refresh_from_db()
    before = (token.version, token.revoked_at, token.leaked_at)

    again = github.post(body, key_id="old-key")  # signed anew: the body is what counts

    assert again.status_code == 200
    assert again.json() == first.json()
    token.refresh_from_db()
    assert (token.version, token.revoked_at, token.leaked_at) == before
    assert len(events(token, AuditAction.REVOKED)) == 1
    assert len(events(token, AuditAction.LEAK_REPORTED)) == 1
    assert LeakReport.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_identical_reports_at_once_act_once_and_neither_fails(github, needs_postgresql):
    tokens = [make_token() for _ in range(20)]
    body = json.dumps([entry(secret) for _, secret in tokens]).encode()
    answers, barrier = [], threading.Barrier(2)

    def deliver():
        barrier.wait()
        try:
            answers.append(github.post(body, client=Client(enforce_csrf_checks=True)))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert {label["label"] for label in answers[0].json()} == {"true_positive"}
    assert LeakReport.objects.count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.REVOKED).count() == 20
    assert AuditEvent.objects.filter(action=AuditAction.LEAK_REPORTED).count() == 20


# --- Refused -----------------------------------------------------------------------------


def _nothing_changed(token):
    token.refresh_from_db()
    assert token.revoked_at is None and token.leaked_at is None
    assert LeakReport.objects.count() == 0
    assert len(events(token)) == 1  # created


@pytest.mark.parametrize(
    "how",
    [
        "missing both headers",
        "missing signature",
        "missing key id",
        "unknown key id",
        "signed by another key",
        "signed by the other known key",
        "signature not base64",
        "signature of another body",
        "empty signature",
    ],
)
def test_a_bad_or_missing_signature_answers_401_and_changes_nothing(github, how):
    token, secret = make_token()
    body = json.dumps([entry(secret)]).encode()
    stranger = ec.generate_private_key(ec.SECP256R1())
    kwargs = {
        "missing both headers": {"key_id": None},
        "missing signature": {"signature": ""},
        "missing key id": {"key_id": None, "signature": sign(github.keys["current-key"], body)},
        "unknown key id": {"key_id": "someone-else", "key": stranger},
        "signed by another key": {"key": stranger},
        "signed by the other known key": {"key": github.keys["old-key"]},
        "signature not base64": {"signature": "not base64 at all!"},
        "signature of another body": {"signature": sign(github.keys["current-key"], b"[]")},
        "empty signature": {"signature": " "},
    }[how]

    response = github.post(body, **kwargs)

    assert response.status_code == 401
    assert "error" in response.json()
    assert secret not in response.content.decode()
    _nothing_changed(token)


def test_a_body_over_1_mb_answers_413_unread(github):
    token, secret = make_token()
    body = json.dumps([entry(secret, url="https://x.test/" + "a" * (1024 * 1024))]).encode()

    response = github.post(body)

    assert response.status_code == 413
    _nothing_changed(token)


def test_a_declared_length_over_1_mb_answers_413_before_reading(github):
    token, secret = make_token()

    response = github.post([entry(secret)], CONTENT_LENGTH=str(1024 * 1024 + 1))

    assert response.status_code == 413
    _nothing_changed(token)


def test_a_body_of_exactly_1_mb_is_read(github):
    token, secret = make_token()
    body = json.dumps([entry(secret)]).encode()
    body = body[:-1] + b" " * (1024 * 1024 - len(body)) + b"]"
    assert len(body) == 1024 * 1024

    assert github.post(body).status_code == 200


def test_over_1000_entries_answer_413(github):
    token, secret = make_token()

    response = github.post([entry(secret)] + [entry(f"x{i}") for i in range(1000)])

    assert response.status_code == 413
    _nothing_changed(token)
    assert github.post([entry(f"x{i}") for i in range(1000)]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe[]",
        b'{"token": "tpk_x"}',
        b"[1, 2]",
        b'[{"type": "t", "url": "u"}]',
        b'[{"token": 42, "type": "t"}]',
        b'[{"token": "x", "type": ""}]',
        b'[{"token": "x", "type": "t", "url": ["u"]}]',
        b"[" * 100_000,
    ],
    ids=[
        "not json",
        "not utf-8",
        "an object",
        "numbers",
        "no token",
        "token not a string",
        "empty type",
        "url not a string",
        "deeply nested",
    ],
)
def test_a_signed_body_that_is_not_a_report_answers_400_with_a_json_error(github, body):
    token, _ = make_token()

    response = github.post(body)

    assert response.status_code == 400
    assert response.json()["error"]
    _nothing_changed(token)


def test_without_the_setting_there_is_no_endpoint(github, settings):
    settings.TOKEN_PORTAL = {**settings.TOKEN_PORTAL, "SECRET_SCANNING_KEYS": ""}
    token, secret = make_token()

    assert github.post([entry(secret)]).status_code == 404
    assert github.client.get(URL).status_code == 404
    _nothing_changed(token)


@pytest.mark.parametrize("method", ["get", "put", "delete", "head"])
def test_other_methods_answer_405(github, method):
    response = getattr(github.client, method)(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


# --- The key file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [None, "not json", '{"keys": []}', '{"public_keys": []}', '{"public_keys": [{"key": "x"}]}'],
    ids=["missing", "not json", "wrong shape", "no keys", "no usable key"],
)
def test_an_unusable_key_file_answers_503_and_logs_an_error(github, content, caplog):
    token, secret = make_token()
    if content is None:
        github.key_file.unlink()
    else:
        github.key_file.write_text(content)

    with caplog.at_level(logging.ERROR, logger="tokens.secret_scanning"):
        response = github.post([entry(secret)])

    assert response.status_code == 503
    assert response["Retry-After"]
    assert "key file is unusable" in caplog.text
    _nothing_changed(token)


def test_a_key_that_is_not_p256_is_skipped_and_the_others_still_work(github):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate()
    document = json.loads(github.key_file.read_text())
    document["public_keys"].append({"key_identifier": "ed", "key": _pem(other), "is_current": 0})
    github.key_file.write_text(json.dumps(document))
    token, secret = make_token()

    assert github.post([entry(secret)]).status_code == 200
    assert github.post([entry(secret)], key_id="ed", signature="AAAA").status_code == 401


def test_a_changed_key_file_is_read_again(github):
    token, secret = make_token()
    assert github.post([entry("warm-up")]).status_code == 200  # the file is loaded
    rotated = ec.generate_private_key(ec.SECP256R1())
    write_key_file(github.key_file, {"rotated": rotated}, current="rotated")
    stat = github.key_file.stat()
    os.utime(github.key_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    assert github.post([entry(secret)]).status_code == 401  # current-key is gone
    response = github.post([entry(secret)], key_id="rotated", key=rotated)

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None


# --- Through the real stack --------------------------------------------------------------


def test_no_session_or_csrf_token_is_needed_and_no_cookie_is_set(github):
    token, secret = make_token()

    response = github.post([entry(secret)])

    assert response.status_code == 200
    assert not response.cookies
    assert "no-store" in response["Cache-Control"]


def test_no_reported_string_is_ever_logged(github, caplog, django_capture_on_commit_callbacks):
    stranger = crypto.generate_token()

    # The token made inside: the one after-commit batch of the test's transaction is
    # registered, and run, within the block (portal.aftercommit).
    with (
        caplog.at_level(logging.DEBUG),
        django_capture_on_commit_callbacks(execute=True),
    ):
        ours, secret = make_token()
        assert github.post([entry(secret), entry(stranger)]).status_code == 200
        assert (
            github.post([entry(secret)], key_id="x", key=github.keys["old-key"]).status_code == 401
        )
        assert github.post(b'[{"token": "%s"}]' % secret.encode()).status_code == 400

    logged = [
        json.dumps([record.getMessage(), getattr(record, "security", None)], default=str)
        for record in caplog.records
    ]
    assert logged, "the report and the refusals are logged"
    assert not [line for line in logged if secret in line or stranger in line]
    fields = [record.security for record in caplog.records if hasattr(record, "security")]
    leaked = next(field for field in fields if field["event"] == "authn_token_leaked")
    assert leaked["token_id"] == str(ours.public_id)
    assert leaked["leak_url"] == LEAK_URL
    assert leaked["token_hash_prefix"] == sha256(secret)[:12]
    report = next(field for field in fields if field["event"] == "secret_scanning_report")
    assert (report["entries"], report["true_positives"], report["revoked"]) == (2, 1, 1)
    assert any(field["event"] == "authn_secret_scanning_fail" for field in fields)


# --- Failures after a valid signature ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_failed_purge_answers_503_and_the_retried_delivery_purges(github, monkeypatch):
    from django.core.cache import cache as django_cache

    from tokens.gateway.cache import PURGED, token_cache_key

    token, secret = make_token()
    key = token_cache_key(token.digest)
    django_cache.set(key, "cached as active")
    real_set = django_cache.set

    def refuse(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("tokens.gateway.cache.cache.set", refuse)
    monkeypatch.setattr("tokens.gateway.cache.time.sleep", lambda seconds: None)
    body = json.dumps([entry(secret)]).encode()

    failed = github.post(body)

    assert failed.status_code == 503 and failed["Retry-After"]
    token.refresh_from_db()
    assert token.revoked_at is not None  # acted on and committed
    assert django_cache.get(key) == "cached as active"

    monkeypatch.setattr("tokens.gateway.cache.cache.set", real_set)
    retried = github.post(body)  # GitHub delivers the same report again

    assert retried.status_code == 200 and retried.json()[0]["label"] == "true_positive"
    assert django_cache.get(key) == PURGED
    assert len(events(token, AuditAction.REVOKED)) == 1


def test_an_unavailable_database_answers_503_never_500(github, monkeypatch):
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("the database is gone")

    monkeypatch.setattr(services, "report_leaked", down)

    response = github.post([entry(crypto.generate_token())])

    assert response.status_code == 503 and response["Retry-After"]
    assert response.json()["error"]
