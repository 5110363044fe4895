"""The access-token admin: find a token (also by its full value), read it, revoke it."""

import re
from datetime import UTC, timedelta

import pytest
from django.contrib.admin import site as admin_site
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import AppFactory, PlanFactory, make_token
from tokens.admin import revoke as revoke_admin
from tokens.admin import tokens as tokens_admin
from tokens.gateway.cache import token_cache_key
from tokens.models import AccessToken, AuditAction, TokenOrigin

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:tokens_accesstoken_changelist"


def change_url(token):
    return reverse("admin:tokens_accesstoken_change", args=[token.pk])


def revoke_url(token):
    return reverse("admin:tokens_accesstoken_revoke", args=[token.pk])


def listed(response) -> list[AccessToken]:
    return list(response.context["cl"].result_list)


def message_texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def support_client(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def mixed_tokens():
    """Two revocable tokens and one of each kind that a revoke must skip."""
    app = AppFactory(name="Billing")
    return {
        "active": make_token(app=app, owner="Ada")[0],
        "active_too": make_token(app=app, owner="Grace")[0],
        "oauth": make_token(app=app, owner="Client", origin=TokenOrigin.OAUTH)[0],
        "revoked": make_token(app=app, owner="Old", revoked=True)[0],
        "expired": make_token(app=app, owner="Late", expired=True)[0],
    }


# The list.


def test_the_list_shows_the_columns_support_needs(support_client):
    plan = PlanFactory(name="Gold", api__name="Payments")
    token, _ = make_token(app=AppFactory(name="Shop"), owner="Ada Lovelace", plans=[plan])
    response = support_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    text = response.text
    for heading in ("Code", "Owner", "App", "Status", "APIs", "Created", "Expires", "Last used"):
        assert heading in text
    assert token.masked_code in text
    assert "Ada Lovelace" in text and "Shop" in text
    assert "Payments v1 (Gold)" in text
    assert 'class="token-status token-status--active"' in text


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("active", {"active", "active_too", "oauth"}),
        ("expired", {"expired"}),
        ("revoked", {"revoked"}),
    ],
)
def test_the_status_filter_computes_each_status(support_client, mixed_tokens, status, expected):
    response = support_client.get(reverse(CHANGELIST), {"status": status})
    names = {name for name, token in mixed_tokens.items() if token in listed(response)}
    assert names == expected


def test_filters_by_origin_app_api_and_plan(support_client):
    gold, silver = PlanFactory(name="Gold"), PlanFactory(name="Silver")
    shop = AppFactory(name="Shop")
    with_gold, _ = make_token(app=shop, plans=[gold])
    with_silver, _ = make_token(plans=[silver])
    oauth, _ = make_token(app=shop, origin=TokenOrigin.OAUTH)
    get = lambda **params: set(listed(support_client.get(reverse(CHANGELIST), params)))  # noqa: E731
    assert get(origin__exact="oauth") == {oauth}
    assert get(app__id__exact=shop.pk) == {with_gold, oauth}
    assert get(api=gold.api_id) == {with_gold}
    assert get(plan=silver.pk) == {with_silver}
    assert get(api=gold.api_id, plan=silver.pk) == set()
    # Nonsense in a filter is ignored, never a 500.
    assert support_client.get(reverse(CHANGELIST), {"api": "x", "status": "y"}).status_code == 200


# Search.


def test_search_by_owner_app_code_prefix_and_extra_field_value(support_client):
    ada, _ = make_token(app=AppFactory(name="Shop"), owner="Ada Lovelace")
    grace, _ = make_token(
        app=AppFactory(name="Billing"), owner="Grace", extra_fields=[["ticket", "SUP-4711"]]
    )
    search = lambda q: listed(support_client.get(reverse(CHANGELIST), {"q": q}))  # noqa: E731
    assert search("lovelace") == [ada]
    assert search("billing") == [grace]
    assert search("SUP-4711") == [grace]
    assert search(ada.prefix) == [ada]


def test_get_search_results_matches_a_pasted_full_token_by_its_digest(rf, support_user):
    token, secret = make_token()
    make_token()
    model_admin = admin_site._registry[AccessToken]
    request = rf.get("/")
    request.user = support_user
    queryset = model_admin.get_queryset(request)
    found, may_have_duplicates = model_admin.get_search_results(request, queryset, f" {secret} ")
    assert list(found) == [token]
    assert may_have_duplicates is False
    assert "digest" in str(found.query)


def test_a_full_token_in_a_hand_made_link_opens_the_token_and_is_never_echoed(support_client):
    token, secret = make_token()
    response = support_client.get(reverse(CHANGELIST), {"q": f"  {secret} "})
    assert response.status_code == 302
    assert response["Location"] == change_url(token)


def test_a_pasted_full_token_is_posted_and_opens_the_token_without_a_secret_in_any_url(
    support_client,
):
    token, secret = make_token()
    response = support_client.post(reverse(CHANGELIST), {"_search": "1", "q": secret})
    assert response.status_code == 302
    assert response["Location"] == change_url(token)
    assert secret not in response["Location"]


def test_a_pasted_unknown_token_says_so(support_client):
    _, secret = make_token()
    AccessToken.objects.all().delete()
    response = support_client.post(
        reverse(CHANGELIST) + "?status=active", {"_search": "1", "q": secret}
    )
    assert response.status_code == 302
    assert secret not in response["Location"]
    assert response["Location"] == reverse(CHANGELIST) + "?status=active"
    assert "No token matches the pasted token." in message_texts(response)


def test_a_mistyped_token_is_searched_by_its_code_prefix_and_kept_out_of_the_url(
    support_client,
):
    token, secret = make_token()
    typo = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    response = support_client.post(reverse(CHANGELIST), {"_search": "1", "q": typo})
    assert response.status_code == 302
    assert secret[12:] not in response["Location"] and typo[12:] not in response["Location"]
    assert any("not a complete, valid token" in text for text in message_texts(response))
    assert listed(support_client.get(response["Location"])) == [token]


def test_any_other_search_term_goes_to_the_usual_query_string_keeping_the_filters(support_client):
    response = support_client.post(
        reverse(CHANGELIST) + "?status=active&p=3&q=old", {"_search": "1", "q": "Ada"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse(CHANGELIST) + "?status=active&q=Ada"


def test_the_search_box_posts_with_csrf(support_client):
    text = support_client.get(reverse(CHANGELIST)).text
    form = re.search(r'<form id="changelist-search"[^>]*>.*?</form>', text, re.DOTALL).group(0)
    assert 'method="post"' in form
    assert 'name="csrfmiddlewaretoken"' in form


def test_searching_needs_the_view_permission(client, plain_user):
    plain_user.is_staff = True
    plain_user.save()
    client.force_login(plain_user)
    _, secret = make_token()
    assert client.post(reverse(CHANGELIST), {"_search": "1", "q": secret}).status_code == 403


# The change page.


def test_the_change_page_shows_the_token_its_history_and_the_portal_overview(support_client):
    plan = PlanFactory(name="Gold", api__name="Payments")
    token, _ = make_token(owner="Ada", plans=[plan], extra_fields=[["team", "Risk"]])
    response = support_client.get(change_url(token))
    text = response.text
    assert token.masked_code in text
    assert "team: Risk" in text
    assert "Payments v1 (Gold)" in text
    assert token.get_absolute_url() in text and "Overview in portal" in text
    # The audit trail, read-only.
    assert "History" in text and "Created" in text
    assert 'name="events-0-actor_label"' not in text


def test_an_oauth_token_gets_no_revoke_button_and_the_page_says_why(support_client):
    token, _ = make_token(origin=TokenOrigin.OAUTH)
    text = support_client.get(change_url(token)).text
    assert revoke_url(token) not in text
    assert "RFC 7009" in text


# Revoking, one token.


def test_the_revoke_button_offers_an_optional_reason_then_revokes_through_the_service(
    support_client, support_user
):
    token, _ = make_token()
    page = support_client.get(revoke_url(token))
    assert page.status_code == 200
    assert "HTTP 401 (Unauthorized)" in page.text
    # Optional, as in the portal (the service's rule): said so, and nothing marked required.
    textarea = re.search(r"<textarea[^>]*>", page.text).group(0)
    assert 'name="reason"' in textarea and "required" not in textarea
    assert ">Reason (optional)</label>" in page.text
    assert "are required" not in page.text

    response = support_client.post(
        revoke_url(token), {"reason": "leaked in a ticket"}, REMOTE_ADDR="203.0.113.7"
    )
    assert response.status_code == 302
    assert response["Location"] == change_url(token)
    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revoked_by == support_user.username
    assert token.revocation_reason == "leaked in a ticket"
    event = token.events.get(action=AuditAction.REVOKED)
    assert event.actor == support_user
    assert str(event.remote_addr) == "203.0.113.7"
    assert event.changes["revocation_reason"] == [None, "leaked in a ticket"]
    log = LogEntry.objects.get(object_id=str(token.pk), action_flag=CHANGE)
    assert "leaked in a ticket" in log.get_change_message()


def test_the_revoke_page_of_an_oauth_token_offers_no_confirm_and_a_forged_post_is_refused(
    support_client,
):
    token, _ = make_token(origin=TokenOrigin.OAUTH)
    page = support_client.get(revoke_url(token))
    assert page.status_code == 200
    assert "cannot be revoked here" in page.text
    assert 'type="submit"' not in page.text.split('id="content-main"')[1]
    response = support_client.post(revoke_url(token), {"reason": "forged"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is None
    assert any("OAuth" in text for text in message_texts(response))


@pytest.mark.parametrize("hidden", ["\x1b[2J", "\u202e", "\u200b"])
def test_a_reason_with_hidden_characters_is_refused_as_in_the_portal(
    support_client, mixed_tokens, hidden
):
    # The admin checks the reason with the portal's form: the same refusal, both ways in.
    token = mixed_tokens["active"]
    one = support_client.post(revoke_url(token), {"reason": f"leaked{hidden}"})
    many = post_action(support_client, [token], post="yes", reason=f"leaked{hidden}")
    for response in (one, many):
        assert response.status_code == 200
        assert "The reason contains control or invisible characters." in response.text
    token.refresh_from_db()
    assert token.revoked_at is None
    assert not token.events.filter(action=AuditAction.REVOKED).exists()


def test_revoking_an_unknown_token_redirects_with_a_message(support_client):
    response = support_client.get(reverse("admin:tokens_accesstoken_revoke", args=[999999]))
    assert response.status_code == 302


# Forged input.


@pytest.mark.parametrize(
    "params",
    [
        {"api": "99999999999999999999999"},
        {"plan": "-1"},
        {"app__id__exact": "99999999999999999999999"},
        {"status": "\x00"},
        {"o": "x.y"},
        {"p": "99999999999999999999"},
        {"created_at__gte": "garbage"},
    ],
)
def test_nonsense_in_the_query_string_is_never_a_500(support_client, params):
    make_token()
    for name in (CHANGELIST, "admin:tokens_auditevent_changelist"):
        # 400: a value no database can compare (NUL, an id beyond 64 bits).
        assert support_client.get(reverse(name), params).status_code in (200, 302, 400)


@pytest.mark.parametrize("selected", ["99999999999999999999999", "abc", "-1", "\u00b2"])
def test_a_forged_selection_is_refused_with_a_message(support_client, selected):
    make_token()
    response = post_action(support_client, [], _selected_action=[selected], index="0")
    assert response.status_code == 302
    assert "The selection was not understood; select the rows again." in message_texts(response)
    for object_id in (selected, "abc"):
        url = reverse("admin:tokens_accesstoken_revoke", args=[object_id])
        assert support_client.get(url).status_code == 302


# Revoking in bulk.


def post_action(client, tokens, **extra):
    data = {"action": "revoke_selected", "_selected_action": [t.pk for t in tokens], **extra}
    return client.post(reverse(CHANGELIST), data, REMOTE_ADDR="198.51.100.1")


def test_the_bulk_revoke_confirmation_states_count_warning_and_skipped_tokens(
    support_client, mixed_tokens
):
    response = post_action(support_client, mixed_tokens.values(), index="0")
    assert response.status_code == 200
    text = response.text
    assert "You are about to revoke <strong>2 tokens</strong> of the 5 selected" in text
    assert "HTTP 401 (Unauthorized)" in text
    assert "Will be skipped (2)" in text
    assert "Issued by the OAuth flow: only its client can revoke it" in text
    assert "Already revoked: will be purged again (1)" in text
    assert "Expired: the gateway already refuses it" in text
    assert 'name="reason"' in text and 'name="csrfmiddlewaretoken"' in text
    # Nothing is revoked before the confirmation.
    assert AccessToken.objects.revoked().count() == 1


def test_confirming_revokes_the_revocable_tokens_and_skips_the_others(
    support_client, support_user, mixed_tokens
):
    response = post_action(
        support_client, mixed_tokens.values(), post="yes", reason="customer reported a leak"
    )
    assert response.status_code == 302
    for name in ("active", "active_too"):
        token = mixed_tokens[name]
        token.refresh_from_db()
        assert token.status == "revoked", name
        event = token.events.get(action=AuditAction.REVOKED)
        assert event.actor == support_user
        assert event.changes["revocation_reason"] == [None, "customer reported a leak"]
        assert str(event.remote_addr) == "198.51.100.1"
    for name in ("oauth", "expired"):
        token = mixed_tokens[name]
        token.refresh_from_db()
        assert token.revoked_at is None, name
        assert not token.events.filter(action=AuditAction.REVOKED).exists()
    previously = mixed_tokens["revoked"]
    assert previously.events.filter(action=AuditAction.REVOKED).count() == 1
    texts = message_texts(response)
    assert any(text.startswith("Revoked 2 tokens.") for text in texts)
    assert any(text.startswith("Purged 1 token already revoked") for text in texts)
    assert sum(text.startswith("Skipped ") for text in texts) == 2
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2


def test_confirming_without_a_reason_revokes_as_the_portal_does(support_client, mixed_tokens):
    response = post_action(support_client, [mixed_tokens["active"]], post="yes", reason="")
    assert response.status_code == 302
    token = mixed_tokens["active"]
    token.refresh_from_db()
    assert token.status == "revoked"
    assert token.revocation_reason == ""
    assert "revocation_reason" not in token.events.get(action=AuditAction.REVOKED).changes


def test_when_nothing_selected_can_be_revoked_there_is_nothing_to_confirm(
    support_client, mixed_tokens
):
    tokens = [mixed_tokens["oauth"], mixed_tokens["expired"]]
    response = post_action(support_client, tokens, index="0")
    assert "None of the 2 selected tokens can be revoked here." in response.text
    assert 'name="reason"' not in response.text


def test_a_bulk_revoke_beyond_the_limit_is_refused(support_client, mixed_tokens, monkeypatch):
    monkeypatch.setattr(revoke_admin, "MAX_BULK_REVOKE", 1)
    response = post_action(
        support_client, [mixed_tokens["active"], mixed_tokens["active_too"]], post="yes", reason="x"
    )
    assert response.status_code == 302
    assert any("at most 1 tokens" in text for text in message_texts(response))
    assert AccessToken.objects.revoked().count() == 1


def test_the_bulk_revoke_purges_the_gateway_cache(support_client, mixed_tokens, transactional_db):
    token = mixed_tokens["active"]
    cache.set(token_cache_key(token.digest), "cached as active")
    post_action(support_client, [token], post="yes", reason="leak")
    assert cache.get(token_cache_key(token.digest)) != "cached as active"


# Never a secret.


def test_no_admin_page_shows_a_secret_or_a_digest(support_client, mixed_tokens):
    token, secret = make_token(owner="Ada", extra_fields=[["k", "v"]], plans=[PlanFactory()])
    everything = [token, *mixed_tokens.values()]
    event = token.events.get()
    pages = [
        reverse(CHANGELIST),
        change_url(token),
        revoke_url(token),
        reverse("admin:tokens_accesstoken_history", args=[token.pk]),
        reverse("admin:tokens_auditevent_changelist"),
        reverse("admin:tokens_auditevent_change", args=[event.pk]),
        reverse("admin:tokens_app_change", args=[token.app_id]),
        reverse("admin:tokens_app_changelist"),
    ]
    bodies = [support_client.get(page).text for page in pages]
    bodies.append(post_action(support_client, everything, index="0").text)
    support_client.post(revoke_url(token), {"reason": "leak"})
    bodies.append(support_client.get(change_url(token)).text)
    for body in bodies:
        assert secret not in body
        assert secret[-20:] not in body
        for each in everything:
            assert each.digest not in body
        assert token.app.client_secret_digest not in body


# Scale.


def make_many(count, plans):
    app = AppFactory()
    for n in range(count):
        make_token(
            app=app, owner=f"owner {n}", plans=plans, expires_at=timezone.now() + timedelta(days=1)
        )


@pytest.mark.parametrize("params", [{}, {"status": "active", "o": "2"}, {"q": "owner"}])
def test_the_list_runs_the_same_few_queries_for_5_or_60_tokens(support_client, params):
    plans = [PlanFactory(), PlanFactory()]
    url = reverse(CHANGELIST)
    make_many(5, plans)
    support_client.get(url, params)  # warm the session and content-type caches
    with CaptureQueriesContext(connection) as few:
        assert support_client.get(url, params).status_code == 200
    make_many(55, plans)
    with CaptureQueriesContext(connection) as many:
        response = support_client.get(url, params)
    assert len(response.context["cl"].result_list) == 50  # a full page, with APIs
    # (One of them asks whether the user has enrolled a device: accounts.mfa, debug mode.)
    assert len(many.captured_queries) == len(few.captured_queries) <= 13


def test_the_list_never_counts_a_big_table_in_full(support_client, monkeypatch):
    monkeypatch.setattr(tokens_admin.EstimatedCountPaginator, "exact_count_limit", 20)
    make_many(30, [])
    with CaptureQueriesContext(connection) as ctx:
        response = support_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    counts = [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the list is counted, with a bound"
    assert all(re.search(r"\bLIMIT\b", sql) for sql in counts), counts
    assert "more than 20" in response.text or "about" in response.text


def test_the_audit_event_list_runs_the_same_queries_for_few_or_many_events(support_client):
    url = reverse("admin:tokens_auditevent_changelist")
    make_many(5, [])
    support_client.get(url)
    with CaptureQueriesContext(connection) as few:
        support_client.get(url)
    make_many(40, [])
    with CaptureQueriesContext(connection) as many:
        support_client.get(url)
    assert len(many.captured_queries) == len(few.captured_queries)


# End to end: support finds a leaked token by its value, revokes it, the gateway refuses it.


def test_a_token_revoked_in_admin_answers_401_at_the_gateway(
    client, support_user, transactional_db
):
    plan = PlanFactory(api__base_path="/pay")
    token, secret = make_token(plans=[plan])
    gateway = {"HTTP_AUTHORIZATION": f"Bearer {secret}", "HTTP_X_ORIGINAL_URI": "/pay/charges"}
    assert client.get("/gateway/auth", **gateway).status_code == 200  # now cached as valid

    client.force_login(support_user)
    found = client.post(reverse(CHANGELIST), {"_search": "1", "q": secret})
    assert found["Location"] == change_url(token)
    client.post(revoke_url(token), {"reason": "customer pasted it in a public issue"})

    refused = client.get("/gateway/auth", **gateway)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]


def test_the_list_shows_times_as_the_portal_does_and_never_for_none(support_client):
    token, _ = make_token()
    created = token.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    machine = token.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    html = support_client.get(reverse(CHANGELIST)).content.decode()

    assert f'<td class="field-created"><time datetime="{machine}">{created}</time></td>' in html
    assert '<td class="field-expires">never</td>' in html
    assert '<td class="field-last_used">never</td>' in html


@pytest.mark.parametrize(
    ("sort", "ordering"),
    [
        ("6", ["created_at", "pk"]),
        ("-6", ["-created_at", "-pk"]),
        ("2", ["owner", "pk"]),
        ("-3", ["-app_name", "-pk"]),
        ("", ["-created_at", "-id"]),  # the default
        ("99", ["-created_at", "-id"]),  # no such column: the default
    ],
)
def test_ties_of_a_sorted_column_are_broken_by_the_id_in_its_direction(
    support_client, sort, ordering
):
    # The id alone, not the default order after it: one index (column, id) serves the page.
    response = support_client.get(reverse(CHANGELIST), {"o": sort} if sort else {})

    order_by = [str(part) for part in response.context["cl"].queryset.query.order_by]
    assert list(dict.fromkeys(order_by)) == ordering  # the SQL names a repeated key once
