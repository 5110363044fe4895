"""GitHub's report to a real portal process: signed with ``cryptography``, posted with
``requests`` to gunicorn (the portal's worker, production settings), then the gateway
refuses the reported token (issue 14, item 5)."""

import hashlib
import json

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e import servers
from tests.test_secret_scanning import sign, write_key_file


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secret-scanning")
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = folder / "github-keys.json"
    write_key_file(key_file, {"github-key": key}, current="github-key")
    env = servers.portal_env(
        DATABASE_URL=f"sqlite:///{folder / 'portal.sqlite3'}",
        TOKEN_PORTAL_SECRET_SCANNING_KEYS=str(key_file),
    )
    servers.manage("migrate", "--no-input", env=env)
    app = json.loads(
        servers.manage("create_app", "--name", "Payer", "--subscribe", "/pay:Gold", env=env)
    )
    with servers.gunicorn(env=env) as base_url:
        issued = requests.post(
            f"{base_url}/oauth/token/",
            data={"grant_type": "client_credentials"},
            auth=(app["client_id"], app["client_secret"]),
            timeout=10,
        )
        assert issued.status_code == 200, issued.text
        yield base_url, key, issued.json()["access_token"]


def report(base_url, key, entries, *, key_id="github-key"):
    body = json.dumps(entries).encode()
    return requests.post(
        f"{base_url}/secret-scanning/github/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": key_id,
            "Github-Public-Key-Signature": sign(key, body),
        },
        timeout=10,
    )


def check(base_url, secret):
    return requests.get(
        f"{base_url}/gateway/auth",
        headers={"Authorization": f"Bearer {secret}", "X-Original-URI": "/pay/orders"},
        timeout=10,
    )


def test_a_signed_report_revokes_the_token_and_the_gateway_refuses_it(portal):
    base_url, key, secret = portal
    assert check(base_url, secret).status_code == 200
    entries = [
        {
            "token": secret,
            "type": "token_portal_access_token",
            "url": "https://github.com/octocat/Hello-World/blob/main/.env",
            "source": "content",
        },
        {"token": "tpk_not_ours", "type": "token_portal_access_token", "url": "", "source": ""},
    ]

    forged = report(base_url, ec.generate_private_key(ec.SECP256R1()), entries)
    assert forged.status_code == 401
    assert check(base_url, secret).status_code == 200  # nothing changed

    answer = report(base_url, key, entries)

    assert answer.status_code == 200
    assert answer.json() == [
        {
            "token_hash": hashlib.sha256(secret.encode()).hexdigest(),
            "token_type": "token_portal_access_token",
            "label": "true_positive",
        },
        {
            "token_hash": hashlib.sha256(b"tpk_not_ours").hexdigest(),
            "token_type": "token_portal_access_token",
            "label": "false_positive",
        },
    ]
    assert check(base_url, secret).status_code == 401
    assert report(base_url, key, entries).json() == answer.json()  # a replay


def test_a_body_over_1_mb_is_refused_by_its_length(portal):
    base_url, key, _ = portal
    body = b"[" + b" " * (1024 * 1024) + b"]"

    answer = requests.post(
        f"{base_url}/secret-scanning/github/",
        data=body,
        headers={"Github-Public-Key-Identifier": "github-key", "Github-Public-Key-Signature": "x"},
        timeout=10,
    )

    assert answer.status_code == 413
