"""Edit: only Owner, Extra Fields and API/plan associations change; stale edits are refused."""

import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    XSS,
    XSS_ESCAPED,
    AppFactory,
    UserFactory,
    api_with_plans,
    assert_escaped,
    extra_fields_data,
    make_token,
    plans_data,
)
from tokens import services
from tokens.models import AccessToken, AuditAction, TokenApi, TokenOrigin

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]


def edit_url(token) -> str:
    return reverse("tokens:edit", args=[token.public_id])


def edit_data(token, *, owner=None, pairs=None, plans=None, version=None, delete=()):
    """What the Edit form posts, starting from the token's current values."""
    current_pairs = token.extra_field_pairs()
    data = {
        "owner": token.owner if owner is None else owner,
        "version": str(token.version if version is None else version),
        "save": "1",
    }
    data.update(
        extra_fields_data(
            current_pairs if pairs is None else pairs, initial=len(current_pairs), delete=delete
        )
    )
    data.update(
        plans_data([link.plan for link in token.api_links.all()] if plans is None else plans)
    )
    return data


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _links(token) -> dict[int, int]:
    return dict(TokenApi.objects.filter(token=token).values_list("api_id", "plan_id"))


def _row(token) -> dict:
    return AccessToken.objects.filter(pk=token.pk).values().get()


def _version_on_page(html: str) -> str:
    return re.search(r'<input type="hidden" name="version" value="(\d+)"', html).group(1)


# --- The form -------------------------------------------------------------------------------


def test_edit_form_shows_editable_and_read_only_fields(portal_admin_client):
    pay, (free, gold) = api_with_plans("Free", "Gold", name="Payments")
    token, secret = make_token(
        app=AppFactory(name="Acme"),
        owner="Ada",
        extra_fields=[["Env", "prod"]],
        plans=[gold],
        expires_at=timezone.now() + timedelta(days=9),
    )

    response = portal_admin_client.get(edit_url(token))

    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'role="tab"[^>]*>([^<]+)</a>', html) == ["Basic info", "APIs and Plans"]
    assert re.search(r'<input[^>]*name="owner"[^>]*value="Ada"', html)
    assert re.search(r'name="extra-0-name"[^>]*value="Env"', html)
    assert re.search(r'name="extra-0-value"[^>]*value="prod"', html)
    assert re.search(rf'<option value="{gold.pk}" selected>Gold</option>', html)
    assert _version_on_page(html) == "1"
    for label in ("Save Edit", "Add extra field", "Not associated"):
        assert label in html
    read_only = html.split('class="row token-fields"', 1)[1].split("</dl>", 1)[0]
    for text in ("Acme", "Portal", token.masked_code, "Active"):
        assert text in read_only
    assert 'name="app"' not in html
    assert 'name="expires_at"' not in html
    assert secret not in html


def test_edit_page_query_count_does_not_grow_with_apis_and_plans(portal_admin_client):
    token, _ = make_token(plans=[api_with_plans("Free", "Gold")[1][0]])
    portal_admin_client.get(edit_url(token))
    with CaptureQueriesContext(connection) as few:
        assert portal_admin_client.get(edit_url(token)).status_code == 200

    plans = [api_with_plans("Free", "Gold", "Platinum")[1][1] for _ in range(10)]
    TokenApi.objects.bulk_create(TokenApi(token=token, api=p.api, plan=p) for p in plans)
    with CaptureQueriesContext(connection) as many:
        response = portal_admin_client.get(edit_url(token))

    assert response.content.decode().count("<select ") == 11
    assert len(many.captured_queries) == len(few.captured_queries)


# --- Saving ---------------------------------------------------------------------------------


def test_save_edit_changes_owner_extra_fields_and_plans_in_one_go(
    portal_admin_client, portal_admin
):
    pay, (free, gold) = api_with_plans("Free", "Gold")
    orders, (basic,) = api_with_plans("Basic")
    ship, (express,) = api_with_plans("Express")
    token, _ = make_token(owner="Old", plans=[free, basic], extra_fields=[["Env", "dev"]])

    response = portal_admin_client.post(
        edit_url(token),
        edit_data(
            token,
            owner="New owner",
            pairs=[("Env", "prod"), ("Ticket", "SUP-1")],
            plans=[gold, express],
        ),
        REMOTE_ADDR="198.51.100.4",
    )

    assert response.status_code == 302
    assert response.url == token.get_absolute_url()
    assert f"Token {token.masked_code} was saved." in _messages(response)
    token.refresh_from_db()
    assert token.owner == "New owner"
    assert token.extra_fields == [["Env", "prod"], ["Ticket", "SUP-1"]]
    assert _links(token) == {pay.pk: gold.pk, ship.pk: express.pk}
    event = token.events.get(action=AuditAction.EDITED)
    assert (event.actor, event.remote_addr) == (portal_admin, "198.51.100.4")
    assert set(event.changes) == {"owner", "extra_fields", "apis"}


def test_removing_an_extra_field_with_its_remove_box(portal_admin_client):
    token, _ = make_token(extra_fields=[["Env", "dev"], ["Ticket", "T-1"]])

    portal_admin_client.post(edit_url(token), edit_data(token, delete=[0]))

    token.refresh_from_db()
    assert token.extra_fields == [["Ticket", "T-1"]]


def test_removing_an_api_with_not_associated(portal_admin_client):
    _, (free,) = api_with_plans("Free")
    orders, (basic,) = api_with_plans("Basic")
    token, _ = make_token(plans=[free, basic])

    portal_admin_client.post(edit_url(token), edit_data(token, plans=[basic]))

    assert _links(token) == {orders.pk: basic.pk}


def test_saving_without_a_change_saves_nothing_and_says_so(portal_admin_client):
    _, (gold,) = api_with_plans("Gold")
    token, _ = make_token(plans=[gold], extra_fields=[["Env", "dev"]])

    response = portal_admin_client.post(edit_url(token), edit_data(token))

    assert response.status_code == 302
    assert "Nothing changed, so nothing was saved." in _messages(response)
    token.refresh_from_db()
    assert token.version == 1
    assert not token.events.filter(action=AuditAction.EDITED).exists()


def test_oauth_tokens_can_be_edited_too(portal_admin_client):
    token, _ = make_token(origin=TokenOrigin.OAUTH)

    portal_admin_client.post(edit_url(token), edit_data(token, owner="Renamed"))

    token.refresh_from_db()
    assert token.owner == "Renamed"
    assert token.origin == TokenOrigin.OAUTH


def test_add_extra_field_without_javascript_shows_one_more_row_and_saves_nothing(
    portal_admin_client,
):
    token, _ = make_token(extra_fields=[["Env", "dev"]])
    data = edit_data(token, owner="Typed but not saved")
    del data["save"]
    data["add_extra_field"] = "1"

    response = portal_admin_client.post(edit_url(token), data)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="extra-1-name"' in html
    assert 'name="extra-2-name"' not in html
    assert re.search(r'name="owner"[^>]*value="Typed but not saved"', html)
    token.refresh_from_db()
    assert (token.owner, token.version) == ("Ada Lovelace", 1)


# --- Nothing else can change ----------------------------------------------------------------


def test_forged_fields_cannot_change_anything_but_owner_extra_fields_and_plans(
    portal_admin_client,
):
    other_app = AppFactory()
    token, _ = make_token(expires_at=timezone.now() + timedelta(days=5))
    before = _row(token)
    forged = edit_data(token, owner="New owner")
    forged.update(
        {
            "app": str(other_app.pk),
            "app_id": str(other_app.pk),
            "expires_at": "2099-01-01T00:00:00Z",
            "expires_on": "2099-01-01",
            "origin": "oauth",
            "grant_type": "client_credentials",
            "revoked_at": "2020-01-01T00:00:00Z",
            "revoked_by": "mallory",
            "revocation_reason": "forged",
            "digest": "0" * 64,
            "prefix": "tpk_forged00",
            "suffix": "XXXX",
            "public_id": "00000000-0000-4000-8000-000000000000",
            "created_at": "2000-01-01T00:00:00Z",
            "created_by": "1",
            "last_used_at": "2000-01-01T00:00:00Z",
            "id": "999",
        }
    )

    response = portal_admin_client.post(edit_url(token), forged)

    assert response.status_code == 302
    after = _row(token)
    assert after["owner"] == "New owner"
    assert after["version"] == before["version"] + 1
    unchanged = {k: v for k, v in after.items() if k not in {"owner", "version"}}
    assert unchanged == {k: v for k, v in before.items() if k not in {"owner", "version"}}


def test_a_plan_of_another_api_is_refused_with_a_form_error(portal_admin_client):
    pay, (free,) = api_with_plans("Free")
    _, (foreign,) = api_with_plans("Gold")
    token, _ = make_token(plans=[free])
    data = edit_data(token, owner="Changed")
    data[f"api_{pay.pk}"] = str(foreign.pk)

    response = portal_admin_client.post(edit_url(token), data)

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    token.refresh_from_db()
    assert token.owner == "Ada Lovelace"
    assert _links(token) == {pay.pk: free.pk}


# --- Bad input ------------------------------------------------------------------------------


def _mangle_owner(value):
    return lambda data: data.update({"owner": value})


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        pytest.param(_mangle_owner(""), "This field is required.", id="owner-empty"),
        pytest.param(_mangle_owner("   "), "This field is required.", id="owner-blank"),
        pytest.param(_mangle_owner("x" * 201), "at most 200 characters", id="owner-too-long"),
        pytest.param(_mangle_owner("Ada\x00"), "Null characters are not allowed", id="owner-nul"),
        pytest.param(
            _mangle_owner("Ada\u202e"), "control or invisible characters", id="owner-bidi"
        ),
        pytest.param(
            lambda d: d.update(extra_fields_data([("Env", "a"), ("env", "b")])),
            "appears twice",
            id="duplicate-extra-field",
        ),
        pytest.param(
            lambda d: d.update(extra_fields_data([("", "orphan")])),
            "Give the field a name.",
            id="value-without-name",
        ),
        pytest.param(
            lambda d: d.update(extra_fields_data([(f"f{i}", "v") for i in range(51)])),
            "Please submit at most 50 forms",
            id="too-many-extra-fields",
        ),
        pytest.param(
            lambda d: d.update({"extra-TOTAL_FORMS": "999999"}),
            "Please submit at most 50 forms",
            id="forged-form-count",
        ),
        pytest.param(
            lambda d: [d.pop(k) for k in list(d) if k.startswith("extra-")],
            "ManagementForm data is missing or has been tampered with",
            id="no-management-form",
        ),
        pytest.param(
            lambda d: d.update({"version": "abc"}),
            "The form is out of date; open Edit again.",
            id="version-garbage",
        ),
        pytest.param(
            lambda d: d.pop("version"),
            "The form is out of date; open Edit again.",
            id="version-missing",
        ),
        pytest.param(
            lambda d: d.update({k: "abc" for k in d if k.startswith("api_")}),
            "Select a valid choice",
            id="plan-garbage",
        ),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_saved(portal_admin_client, mangle, error):
    _, (gold,) = api_with_plans("Gold")
    token, _ = make_token(owner="Ada", plans=[gold], extra_fields=[["Env", "dev"]])
    before = _row(token)
    data = edit_data(token, owner="Changed")
    mangle(data)

    response = portal_admin_client.post(edit_url(token), data)

    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was saved: please correct the errors below." in html
    assert error in html
    assert _row(token) == before
    assert _links(token) == {gold.api_id: gold.pk}


def test_unknown_token_is_404(portal_admin_client):
    response = portal_admin_client.get("/tokens/00000000-0000-4000-8000-000000000000/edit/")

    assert response.status_code == 404


# --- Expired and revoked --------------------------------------------------------------------


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_expired_and_revoked_tokens_cannot_be_edited(portal_admin_client, state):
    token, _ = make_token(owner="Ada", **{state: True})
    token.refresh_from_db()
    before = _row(token)

    shown = portal_admin_client.get(edit_url(token))
    posted = portal_admin_client.post(edit_url(token), edit_data(token, owner="Changed"))

    for response in (shown, posted):
        assert response.status_code == 302
        assert response.url == token.get_absolute_url()
        assert f"This token is {state} and can no longer be edited." in _messages(response)
    assert _row(token) == before


def test_a_token_that_expires_while_the_form_is_open_is_not_saved(portal_admin_client):
    token, _ = make_token(owner="Ada", expires_at=timezone.now() + timedelta(minutes=5))
    assert portal_admin_client.get(edit_url(token)).status_code == 200

    later = timezone.now() + timedelta(minutes=10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: later)
        response = portal_admin_client.post(edit_url(token), edit_data(token, owner="Changed"))

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.owner == "Ada"


# --- Two administrators ---------------------------------------------------------------------


@pytest.fixture
def two_admins():
    clients = []
    for name in ("ada", "bob"):
        client = Client()
        client.force_login(UserFactory(username=name, groups=["Portal administrators"]))
        clients.append(client)
    return clients


def test_the_later_of_two_edits_is_refused_naming_what_changed(two_admins):
    ada, bob = two_admins
    _, (free, gold) = api_with_plans("Free", "Gold")
    token, _ = make_token(owner="Original", plans=[free])
    ada_version = _version_on_page(ada.get(edit_url(token)).content.decode())
    bob_version = _version_on_page(bob.get(edit_url(token)).content.decode())

    first = ada.post(
        edit_url(token), edit_data(token, owner="Ada's owner", plans=[gold], version=ada_version)
    )
    second = bob.post(
        edit_url(token),
        edit_data(token, owner="Bob's owner", pairs=[("Bob", "x")], version=bob_version),
    )

    assert first.status_code == 302
    assert second.status_code == 409
    html = second.content.decode()
    message = next(m for m in _messages(second) if "changed by someone else" in m)
    assert "edited by ada" in message
    assert "Owner" in message and "APIs and Plans" in message
    assert "Nothing was saved" in message
    conflict = html.split('id="edit-conflict"', 1)[1].split("</div>", 1)[0]
    assert "Owner: Ada&#x27;s owner" in conflict
    assert "Gold" in conflict
    # Bob's input is kept for him to review.
    assert re.search(r'name="owner"[^>]*value="Bob&#x27;s owner"', html)
    token.refresh_from_db()
    assert token.owner == "Ada's owner"
    assert token.extra_fields == []
    assert _links(token) == {gold.api_id: gold.pk}
    assert token.events.filter(action=AuditAction.EDITED).count() == 1


def test_after_reviewing_a_refused_edit_saving_again_applies_it(two_admins):
    ada, bob = two_admins
    token, _ = make_token(owner="Original")
    bob_version = _version_on_page(bob.get(edit_url(token)).content.decode())
    ada.post(edit_url(token), edit_data(token, owner="Ada's owner"))
    refused = bob.post(edit_url(token), edit_data(token, owner="Bob's", version=bob_version))
    assert refused.status_code == 409

    # The conflict page's form now names the version Bob has seen.
    token.refresh_from_db()
    reviewed_version = _version_on_page(refused.content.decode())
    assert reviewed_version == str(token.version)
    again = bob.post(edit_url(token), edit_data(token, owner="Bob's", version=reviewed_version))

    assert again.status_code == 302
    token.refresh_from_db()
    assert token.owner == "Bob's"


def test_an_edit_after_a_revoke_is_refused_and_says_it_was_revoked(two_admins, portal_admin):
    ada, _ = two_admins
    token, _ = make_token(owner="Ada")
    version = _version_on_page(ada.get(edit_url(token)).content.decode())
    services.token_revoke(token=AccessToken.objects.get(pk=token.pk), actor=portal_admin)

    response = ada.post(edit_url(token), edit_data(token, owner="Changed", version=version))

    assert response.status_code == 302
    assert response.url == token.get_absolute_url()
    token.refresh_from_db()
    assert token.owner == "Ada"
    assert token.status == "revoked"


# --- HTML escaping --------------------------------------------------------------------------


def test_user_text_is_escaped_in_the_edit_form(portal_admin_client, hostile_token):
    token, _ = hostile_token

    html = portal_admin_client.get(edit_url(token)).content.decode()

    assert_escaped(html)
    assert f'value="Owner {XSS_ESCAPED}"' in html
    assert f'value="Name {XSS_ESCAPED}"' in html
    assert f'value="Value {XSS_ESCAPED}"' in html


def test_user_text_is_escaped_in_the_conflict_box(two_admins):
    ada, bob = two_admins
    token, _ = make_token()
    version = _version_on_page(bob.get(edit_url(token)).content.decode())
    ada.post(edit_url(token), edit_data(token, owner=f"Owner {XSS}", pairs=[(f"N {XSS}", XSS)]))

    refused = bob.post(edit_url(token), edit_data(token, owner="Bob", version=version))

    assert refused.status_code == 409
    html = refused.content.decode()
    assert_escaped(html)
    conflict = html.split('id="edit-conflict"', 1)[1].split("</div>", 1)[0]
    assert f"Owner: Owner {XSS_ESCAPED}" in conflict
