"""Token and client secrets: format, checksum, entropy and digests."""

import hashlib
import math
from unittest import mock

import pytest

from tokens import crypto

ALPHABET = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _other_char(char: str) -> str:
    return "A" if char != "A" else "B"


def test_token_carries_the_recognisable_prefix_and_fixed_length():
    secret = crypto.generate_token()

    assert secret.startswith("tpk_")
    assert len(secret) == crypto.TOKEN_LENGTH
    assert set(secret[len("tpk_") :]) <= ALPHABET


def test_generated_token_passes_its_own_checksum():
    for _ in range(200):
        assert crypto.looks_like_token(crypto.generate_token())


def test_tokens_hold_at_least_256_random_bits():
    tokens = [crypto.generate_token() for _ in range(2000)]
    bodies = [t[len(crypto.TOKEN_PREFIX) : -6] for t in tokens]
    seen_chars = set("".join(bodies))
    # The random part draws from the whole alphabet at every position…
    assert seen_chars == ALPHABET
    assert {len(body) for body in bodies} == {len(bodies[0])}
    # …so its entropy is length × log2(alphabet size).
    assert len(bodies[0]) * math.log2(len(seen_chars)) >= 256
    assert len(set(tokens)) == len(tokens)


def test_random_part_comes_from_the_secrets_module():
    with mock.patch("tokens.crypto.secrets.choice", side_effect=lambda seq: seq[7]) as choice:
        secret = crypto.generate_token()

    assert choice.call_count >= 43
    assert secret[len(crypto.TOKEN_PREFIX) : -6] == "7" * choice.call_count


def test_checksum_rejects_every_single_character_typo():
    secret = crypto.generate_token()
    for position in range(len(crypto.TOKEN_PREFIX), len(secret)):
        typo = secret[:position] + _other_char(secret[position]) + secret[position + 1 :]
        assert not crypto.looks_like_token(typo), f"typo at {position} accepted"


def test_checksum_rejects_swapped_neighbours():
    secret = crypto.generate_token()
    body_start = len(crypto.TOKEN_PREFIX)
    for position in range(body_start, len(secret) - 1):
        a, b = secret[position], secret[position + 1]
        if a == b:
            continue
        swapped = secret[:position] + b + a + secret[position + 2 :]
        assert not crypto.looks_like_token(swapped)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-1], id="truncated"),
        pytest.param(lambda s: s + "A", id="one-char-too-long"),
        pytest.param(lambda s: "tpx_" + s[4:], id="wrong-prefix"),
        pytest.param(lambda s: s.upper(), id="upper-cased"),
        pytest.param(lambda s: s[:10] + "-" + s[11:], id="char-outside-alphabet"),
        pytest.param(lambda s: s[:10] + "é" + s[11:], id="non-ascii-char"),
        pytest.param(lambda s: " " + s[:-1], id="leading-space"),
        pytest.param(lambda s: "", id="empty"),
    ],
)
def test_malformed_values_are_not_tokens(mangle):
    assert not crypto.looks_like_token(mangle(crypto.generate_token()))


def test_digest_is_the_sha256_hex_of_the_secret():
    secret = crypto.generate_token()

    assert crypto.digest(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert len(crypto.digest(secret)) == 64
    assert secret not in crypto.digest(secret)


def test_digest_accepts_any_text_without_crashing():
    # Lone surrogates can arrive through a form or a JSON body.
    assert len(crypto.digest("\ud800abc")) == 64


def test_digests_match_compares_in_constant_time():
    secret = crypto.generate_token()
    stored = crypto.digest(secret)

    with mock.patch("tokens.crypto.hmac.compare_digest", wraps=crypto.hmac.compare_digest) as cmp:
        assert crypto.digests_match(secret, stored)
        assert not crypto.digests_match(crypto.generate_token(), stored)

    assert cmp.call_count == 2


def test_display_parts_show_only_a_small_part_of_the_secret():
    secret = crypto.generate_token()
    prefix, suffix = crypto.display_parts(secret)

    assert secret.startswith(prefix)
    assert secret.endswith(suffix)
    assert len(prefix) == crypto.DISPLAY_PREFIX_LENGTH
    assert len(suffix) == crypto.DISPLAY_SUFFIX_LENGTH
    hidden = len(secret) - len(prefix) - len(suffix)
    assert hidden * math.log2(62) > 128


def test_client_ids_and_secrets_are_random_and_recognisable():
    ids = {crypto.generate_client_id() for _ in range(200)}
    secrets_ = {crypto.generate_client_secret() for _ in range(200)}

    assert len(ids) == 200
    assert len(secrets_) == 200
    assert all(value.startswith(crypto.CLIENT_ID_PREFIX) for value in ids)
    assert all(value.startswith(crypto.CLIENT_SECRET_PREFIX) for value in secrets_)
    body = next(iter(secrets_))[len(crypto.CLIENT_SECRET_PREFIX) :]
    assert len(body) * math.log2(62) >= 256
    # A client secret is not mistaken for an access token.
    assert not any(crypto.looks_like_token(value) for value in secrets_)
