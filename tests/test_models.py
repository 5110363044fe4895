"""The domain models: status, predicates, querysets and the invariants the database holds."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.factories import (
    ApiFactory,
    AppFactory,
    PlanFactory,
    SubscriptionFactory,
    api_with_plans,
    make_token,
)
from tokens import crypto
from tokens.models import AccessToken, Api, Plan, Subscription, TokenApi, TokenOrigin, TokenStatus

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def _refused_by_the_database(write):
    """Run ``write`` and make the database check every constraint, deferred ones included."""
    with pytest.raises(IntegrityError), transaction.atomic():
        write()
        # PostgreSQL checks the deferred composite foreign keys only at commit; ask now.
        connection.check_constraints()


# --- Status -----------------------------------------------------------------------------


def test_new_token_without_expiry_is_active():
    token, _ = make_token()

    assert token.status == TokenStatus.ACTIVE
    assert token.is_active


def test_token_is_expired_from_the_instant_its_expiry_passes():
    token, _ = make_token(expires_at=timezone.now() + timedelta(hours=1))

    assert token.status_at(token.expires_at - timedelta(microseconds=1)) == TokenStatus.ACTIVE
    assert token.status_at(token.expires_at) == TokenStatus.EXPIRED
    assert token.status_at(token.expires_at + timedelta(days=1)) == TokenStatus.EXPIRED


def test_expired_status_is_derived_from_the_clock_never_stored():
    token, _ = make_token(expires_at=timezone.now() + timedelta(minutes=5))
    assert token.status == TokenStatus.ACTIVE

    later = timezone.now() + timedelta(minutes=10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: later)
        assert token.status == TokenStatus.EXPIRED
        assert not AccessToken.objects.active().filter(pk=token.pk).exists()
        assert AccessToken.objects.expired().filter(pk=token.pk).exists()


def test_revoked_is_final_even_once_the_expiry_passes():
    token, _ = make_token(expires_at=timezone.now() + timedelta(hours=1), revoked=True)

    assert token.status == TokenStatus.REVOKED
    assert token.status_at(token.expires_at + timedelta(days=30)) == TokenStatus.REVOKED


def test_status_querysets_agree_with_each_tokens_status():
    make_token(owner="active")
    make_token(owner="active-later", expires_at=timezone.now() + timedelta(days=1))
    make_token(owner="expired", expired=True)
    make_token(owner="revoked", revoked=True)
    make_token(owner="revoked-and-expired", expired=True, revoked=True)

    for status in TokenStatus:
        from_queryset = set(AccessToken.objects.with_status(status).values_list("owner", flat=True))
        from_rows = {t.owner for t in AccessToken.objects.all() if t.status == status}
        assert from_queryset == from_rows, status
    assert set(AccessToken.objects.expired().values_list("owner", flat=True)) == {"expired"}
    assert set(AccessToken.objects.revoked().values_list("owner", flat=True)) == {
        "revoked",
        "revoked-and-expired",
    }


@pytest.mark.parametrize(
    ("origin", "expired", "revoked", "editable", "revocable"),
    [
        (TokenOrigin.PORTAL, False, False, True, True),
        (TokenOrigin.OAUTH, False, False, True, False),
        (TokenOrigin.PORTAL, True, False, False, False),
        (TokenOrigin.PORTAL, False, True, False, False),
        (TokenOrigin.OAUTH, False, True, False, False),
    ],
)
def test_edit_and_portal_revoke_are_offered_only_for_active_tokens_of_the_right_origin(
    origin, expired, revoked, editable, revocable
):
    token, _ = make_token(origin=origin, expired=expired, revoked=revoked)

    assert token.can_be_edited() is editable
    assert token.can_be_revoked_in_portal() is revocable


# --- Identity and display ------------------------------------------------------------------


def test_token_stores_only_the_digest_and_display_parts_of_its_secret():
    token, secret = make_token()
    token.refresh_from_db()

    assert token.digest == crypto.digest(secret)
    assert secret.startswith(token.prefix)
    assert secret.endswith(token.suffix)
    stored = [str(getattr(token, f.attname)) for f in AccessToken._meta.concrete_fields]
    assert not any(secret in value for value in stored)


def test_masked_code_shows_prefix_and_suffix_only():
    token, secret = make_token()

    assert token.masked_code == f"{secret[:12]}…{secret[-4:]}"
    assert str(token) == token.masked_code
    assert secret not in token.masked_code


def test_absolute_url_uses_the_public_id_not_the_secret_or_pk():
    token, secret = make_token()
    url = token.get_absolute_url()

    assert url == f"/tokens/{token.public_id}/"
    assert secret not in url
    assert token.digest not in url


def test_public_ids_are_unique_random_uuids():
    ids = {make_token()[0].public_id for _ in range(5)}

    assert len(ids) == 5
    assert all(uuid.version == 4 for uuid in ids)


def test_extra_field_pairs_keep_order_and_text():
    token, _ = make_token(extra_fields=[["Zeta", "1"], ["Alpha", "2"]])

    assert token.extra_field_pairs() == [("Zeta", "1"), ("Alpha", "2")]


def test_tokens_list_newest_first():
    old, _ = make_token(owner="old")
    AccessToken.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    make_token(owner="new")

    assert [t.owner for t in AccessToken.objects.all()] == ["new", "old"]


# --- Lookups -------------------------------------------------------------------------------


def test_by_secret_finds_the_token_by_digest():
    token, secret = make_token()
    make_token()

    assert list(AccessToken.objects.by_secret(secret)) == [token]


def test_by_secret_rejects_a_typo_without_a_database_query(django_assert_num_queries):
    _, secret = make_token()
    typo = secret[:20] + ("A" if secret[20] != "A" else "B") + secret[21:]

    with django_assert_num_queries(0):
        assert list(AccessToken.objects.by_secret(typo)) == []


def test_by_secret_of_an_unknown_well_formed_token_finds_nothing():
    make_token()

    assert not AccessToken.objects.by_secret(crypto.generate_token()).exists()


@pytest.fixture
def searchable():
    acme = AppFactory(name="Acme Checkout")
    globex = AppFactory(name="Globex Mobile")
    tokens = {
        "ana": make_token(app=acme, owner="ana.souza@acme.example")[0],
        "bruno": make_token(app=globex, owner="Bruno Lima", extra_fields=[["Ticket", "SUP-2291"]])[
            0
        ],
        "carla": make_token(app=globex, owner="Carla")[0],
    }
    return tokens


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ANA.SOUZA", {"ana"}),
        ("acme checkout", {"ana"}),
        ("globex", {"bruno", "carla"}),
        ("sup-2291", {"bruno"}),
        ("nobody", set()),
        ("   ", {"ana", "bruno", "carla"}),
    ],
)
def test_quick_search_matches_owner_app_and_extra_field_text(searchable, query, expected):
    found = AccessToken.objects.search(query)

    assert {name for name, t in searchable.items() if t in found} == expected


@pytest.mark.parametrize(
    ("value", "query"),
    [
        ("São Paulo", "São"),
        ("Zürich office", "Zürich"),
        ("東京", "東京"),
        ('say "hi"', 'say "hi"'),
        ("C:\\temp\\x", "C:\\temp"),
        ('São "Centro"', 'São "Centro"'),
    ],
)
def test_quick_search_finds_extra_field_values_with_accents_quotes_and_backslashes(value, query):
    token, _ = make_token(extra_fields=[["Where", value]])
    make_token(extra_fields=[["Where", "elsewhere"]])

    assert list(AccessToken.objects.search(query)) == [token]


def test_quick_search_by_pasted_full_token_finds_exactly_that_token():
    app = AppFactory()
    token, secret = make_token(app=app, owner="first")
    make_token(app=app, owner="second")

    assert list(AccessToken.objects.search(f"  {secret}\n")) == [token]


def test_quick_search_by_code_prefix_or_masked_code():
    token, secret = make_token()
    make_token()

    assert list(AccessToken.objects.search(secret[:10])) == [token]
    assert list(AccessToken.objects.search(token.masked_code)) == [token]


def test_with_list_columns_loads_app_and_plans_in_a_fixed_number_of_queries(
    django_assert_num_queries,
):
    for _ in range(6):
        api_a, (plan_a,) = api_with_plans("Gold")
        api_b, (plan_b,) = api_with_plans("Free")
        make_token(plans=[plan_a, plan_b])

    with django_assert_num_queries(2):
        rows = [
            (t.app.name, [(link.api.name, link.plan.name) for link in t.api_links.all()])
            for t in AccessToken.objects.with_list_columns()
        ]

    assert len(rows) == 6
    assert all(len(links) == 2 for _, links in rows)


# --- Invariants held by the database -------------------------------------------------------


def test_plan_names_are_unique_per_api_but_may_repeat_across_apis():
    api = ApiFactory()
    PlanFactory(api=api, name="Gold")

    PlanFactory(name="Gold")  # another API: fine
    _refused_by_the_database(lambda: Plan.objects.create(api=api, name="Gold"))


def test_api_base_path_is_unique():
    ApiFactory(base_path="/payments")

    _refused_by_the_database(lambda: Api.objects.create(name="Other", base_path="/payments"))


def test_token_has_one_plan_per_api():
    api, (free, gold) = api_with_plans("Free", "Gold")
    token, _ = make_token(plans=[free])

    _refused_by_the_database(lambda: TokenApi.objects.create(token=token, api=api, plan=gold))


def test_token_link_refuses_a_plan_of_another_api():
    api = ApiFactory()
    _, (foreign_plan,) = api_with_plans("Gold")
    token, _ = make_token()

    _refused_by_the_database(
        lambda: TokenApi.objects.create(token=token, api=api, plan=foreign_plan)
    )
    assert not TokenApi.objects.filter(token=token).exists()


def test_token_link_cannot_be_updated_to_a_plan_of_another_api():
    api, (own_plan,) = api_with_plans("Free")
    _, (foreign_plan,) = api_with_plans("Gold")
    token, _ = make_token(plans=[own_plan])
    link = TokenApi.objects.get(token=token)

    _refused_by_the_database(lambda: TokenApi.objects.filter(pk=link.pk).update(plan=foreign_plan))
    _refused_by_the_database(lambda: TokenApi.objects.filter(pk=link.pk).update(api=ApiFactory()))
    link.refresh_from_db()
    assert (link.api_id, link.plan_id) == (api.pk, own_plan.pk)


def test_subscription_refuses_a_plan_of_another_api():
    app = AppFactory()
    api = ApiFactory()
    _, (foreign_plan,) = api_with_plans("Gold")

    _refused_by_the_database(
        lambda: Subscription.objects.create(app=app, api=api, plan=foreign_plan)
    )


def test_subscription_has_one_plan_per_api():
    sub = SubscriptionFactory()
    other = PlanFactory(api=sub.api)

    _refused_by_the_database(
        lambda: Subscription.objects.create(app=sub.app, api=sub.api, plan=other)
    )


def test_plan_of_api_rule_is_enforced_by_the_database_mechanism_of_each_backend():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT conrelid::regclass::text, array_length(conkey, 1) FROM pg_constraint "
                "WHERE contype = 'f' AND conname LIKE %s",
                ["%_plan_of_api"],
            )
            found = dict(cursor.fetchall())
            assert found == {"tokens_tokenapi": 2, "tokens_subscription": 2}
        elif connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
                ["%_plan_of_api_%"],
            )
            assert {row[0] for row in cursor.fetchall()} == {
                "tokens_tokenapi_plan_of_api_insert",
                "tokens_tokenapi_plan_of_api_update",
                "tokens_subscription_plan_of_api_insert",
                "tokens_subscription_plan_of_api_update",
            }
        else:  # pragma: no cover - only the two supported backends
            pytest.fail(f"unsupported backend {connection.vendor}")


def test_revoked_token_must_name_who_revoked_it():
    token, _ = make_token()

    _refused_by_the_database(
        lambda: AccessToken.objects.filter(pk=token.pk).update(
            revoked_at=timezone.now(), revoked_by=""
        )
    )


def test_token_origin_must_be_a_known_one():
    token, _ = make_token()

    _refused_by_the_database(
        lambda: AccessToken.objects.filter(pk=token.pk).update(origin="pigeon")
    )


def test_two_tokens_cannot_share_a_digest():
    token, _ = make_token()

    _refused_by_the_database(
        lambda: AccessToken.objects.create(
            digest=token.digest, prefix="tpk_x", suffix="y", app=token.app, owner="dup"
        )
    )


# --- Api and App ---------------------------------------------------------------------------


@pytest.mark.parametrize("base_path", ["payments", "/pay ments", "/pay?x=1", "", "/café"])
def test_api_base_path_must_be_a_clean_absolute_path(base_path):
    with pytest.raises(ValidationError) as excinfo:
        Api(name="Payments", base_path=base_path).full_clean()

    assert "base_path" in excinfo.value.message_dict


def test_api_base_path_accepts_nested_paths():
    Api(name="Payments", base_path="/payments/v2.1_beta~x").full_clean()


def test_app_keeps_only_the_digest_of_its_client_secret():
    app = AppFactory()
    secret = crypto.generate_client_secret()
    app.set_client_secret(secret)
    app.save()
    app.refresh_from_db()

    assert app.client_secret_digest == crypto.digest(secret)
    assert app.check_client_secret(secret)
    assert not app.check_client_secret(secret + "x")
    assert not app.check_client_secret("")


def test_app_without_a_secret_digest_accepts_no_secret():
    app = AppFactory(client_secret_digest="")

    assert not app.check_client_secret("")
    assert not app.check_client_secret(crypto.generate_client_secret())


def test_apps_get_distinct_public_client_ids():
    first, second = AppFactory(), AppFactory()

    assert first.client_id.startswith(crypto.CLIENT_ID_PREFIX)
    assert first.client_id != second.client_id
