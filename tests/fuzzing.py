"""Hypothesis strategies shared by the fuzz tests: hostile text of every kind."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# For examples that render whole pages (a few hundred milliseconds each).
FUZZ_PAGES = settings(FUZZ, max_examples=25)

# Every Unicode character but lone surrogates (which no browser can send as UTF-8).
any_text = st.text(max_size=300)
tricky_text = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\u202e",
            "\ufeff",
            "﷽",
            "🔑" * 50,
            "<script>alert(1)</script>",
            "' OR 1=1 --",
            "../../etc/passwd",
            "%00",
            "%2e%2e%2f",
            "\r\nSet-Cookie: x=y",
            "-1",
            "0",
            "9" * 40,
            "1e309",
            "NaN",
            "2026-02-30",
            "9999-12-31",
            "0001-01-01",
            "tpk_" + "A" * 49,
            "tpcs_" + "b" * 43,
        ]
    ),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=20),
)
huge_text = st.builds(
    lambda char, n: char * n,
    st.characters(exclude_categories=["Cs"]),
    st.integers(min_value=1_000, max_value=40_000),
)
hostile_text = st.one_of(any_text, tricky_text, huge_text)


def hostile_form_data(valid: dict, extra_keys=()):
    """``valid`` with some values replaced by hostile text, some removed, some added."""
    keys = sorted(set(valid) | set(extra_keys))
    return st.builds(
        _mutate,
        st.just(valid),
        st.dictionaries(st.sampled_from(keys), hostile_text, max_size=len(keys)),
        st.sets(st.sampled_from(keys), max_size=len(keys)),
    )


def _mutate(valid, replaced, removed):
    data = {key: value for key, value in valid.items() if key not in removed}
    data.update(replaced)
    return data
