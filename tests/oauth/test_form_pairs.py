"""OAuth bodies: ``form_pairs`` splits exactly as ``parse_qsl`` (which it skips when there
is nothing to decode), and refuses what it refuses."""

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from tokens.oauth.params import _MAX_FIELDS, form_pairs

# Form bodies are ASCII (form_params refuses the rest); '&', '=', '%' and '+' are the
# characters with a meaning, so they come often.
bodies = st.text(alphabet=st.sampled_from("&=%+ab0_-.~;\x00 ") | st.characters(max_codepoint=127))


def reference(text: str):
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError:
        return ValueError


def ours(text: str):
    try:
        return form_pairs(text)
    except ValueError:
        return ValueError


@given(bodies)
def test_it_splits_as_parse_qsl(text):
    assert ours(text) == reference(text)


@given(st.integers(min_value=0, max_value=3 * _MAX_FIELDS), st.sampled_from(["a=1", "", "b"]))
def test_too_many_fields_are_refused_as_parse_qsl_refuses_them(count, field):
    text = "&".join([field] * count)
    assert ours(text) == reference(text)
    assert ours("token=" + "&x" * count) == reference("token=" + "&x" * count)


def test_the_everyday_body():
    assert form_pairs("token=tpk_abc&token_type_hint=access_token") == [
        ("token", "tpk_abc"),
        ("token_type_hint", "access_token"),
    ]
