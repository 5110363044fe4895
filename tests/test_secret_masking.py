"""The secret masker: a real token or client secret never survives, wherever it stands in
the text, and text around it is left alone."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.logs import MASK, contains_secret, mask_secrets
from tests.fuzzing import FUZZ
from tokens import crypto

secrets = st.sampled_from([crypto.generate_token, crypto.generate_client_secret]).map(
    lambda make: make()
)
# Any character (lone surrogates too: a log line may carry what a client sent), and the
# characters that stand next to a secret in URLs, identifiers and headers.
around = st.lists(
    st.one_of(
        st.characters(),
        st.sampled_from("_%=&:;/+-.tpkcsTPK0123456789abcdefXYZ"),
        st.sampled_from(["tpk_", "tpcs_", "%3D", "%5F", "api_key_", "Bearer "]),
    ),
    max_size=30,
).map("".join)
# Base62 characters next to a secret make its run longer; the run is masked whole.
base62_run = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def windows(secret: str, size: int = 12):
    body = secret.split("_", 1)[1]
    return [body[i : i + size] for i in range(len(body) - size + 1)]


@FUZZ
@given(secret=secrets, before=around, after=around, glued=base62_run)
def test_a_real_secret_anywhere_in_any_text_never_survives_masking(secret, before, after, glued):
    for text in (before + secret + after, before + secret + glued + after, secret, before + secret):
        masked = mask_secrets(text)
        assert MASK in masked
        # No twelve characters in a row of the secret's random part are left.
        assert not any(window in masked for window in windows(secret)), masked
        assert contains_secret(text)


@pytest.mark.parametrize(
    "template",
    [
        "api_key_{}",
        "t%3D{}",
        "token%3D{}%26next",
        "x{}y",
        "Authorization: Bearer_{}",
        "tpk_abcdefghijkl{}",  # a secret-shaped run ending where the real one starts
        "tpcs_{}",
        "{}{}",
    ],
)
@pytest.mark.parametrize("make", [crypto.generate_token, crypto.generate_client_secret])
def test_secrets_glued_to_words_or_escapes_are_masked(template, make):
    secret = make()
    text = template.format(secret, make())
    masked = mask_secrets(text)
    assert secret not in masked
    assert not any(window in masked for window in windows(secret))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key={}&next=/tokens/", "key=tpk_[masked]&next=/tokens/"),
        ("api_key_{} then more words", "api_key_tpk_[masked] then more words"),
        ("(t%3D{})", "(t%3Dtpk_[masked])"),
    ],
)
def test_masking_keeps_the_text_around_a_secret(text, expected):
    assert mask_secrets(text.format(crypto.generate_token())) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tpk_ is the prefix of a token; tpcs_ of a client secret",
        "api_key_tpk_docs, stpk_short, tpk_1234567 and tpcs_abc",
        "the code starts tpk_AbCd1234… (eight characters shown)",
    ],
)
def test_text_without_a_secret_is_left_alone(text):
    assert mask_secrets(text) == text
    assert not contains_secret(text)
