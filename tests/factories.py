"""factory-boy factories for the domain models."""

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from tokens import crypto, services
from tokens.models import AccessToken, Api, App, Plan, Subscription, TokenOrigin


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        for name in extracted or []:
            self.groups.add(Group.objects.get(name=name))


class ApiFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Api

    name = factory.Sequence(lambda n: f"API {n}")
    version = "v1"
    base_path = factory.Sequence(lambda n: f"/api{n}")


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    api = factory.SubFactory(ApiFactory)
    name = factory.Sequence(lambda n: f"Plan {n}")
    rate_limit = 600


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"App {n}")
    client_secret_digest = factory.LazyFunction(lambda: crypto.digest("unused"))

    @factory.post_generation
    def client_secret(self, create, extracted, **kwargs):
        """Pass ``client_secret="..."`` to set a known secret for protocol tests."""
        if extracted:
            self.set_client_secret(extracted)
            self.save(update_fields=["client_secret_digest"])


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    app = factory.SubFactory(AppFactory)
    plan = factory.SubFactory(PlanFactory)
    api = factory.LazyAttribute(lambda s: s.plan.api)


def make_token(
    *,
    app=None,
    owner="Ada Lovelace",
    plans=(),
    extra_fields=(),
    expires_at=None,
    origin=TokenOrigin.PORTAL,
    revoked=False,
    expired=False,
    actor=None,
) -> tuple[AccessToken, str]:
    """Issue a token through the real service; returns it and its secret."""
    issued = services.token_create(
        app=app or AppFactory(),
        owner=owner,
        plans=plans,
        extra_fields=extra_fields,
        expires_at=expires_at,
        origin=origin,
        grant_type="client_credentials" if origin == TokenOrigin.OAUTH else "",
        actor=actor,
    )
    token = issued.token
    if expired:
        AccessToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(days=1)
        )
        token.refresh_from_db()
    if revoked:
        services.token_revoke(
            token=token, actor=actor, reason="test", channel=services.RevokeChannel.OAUTH
        )
    return token, issued.secret


def user_with_perms(*perms: str, username: str | None = None):
    """A user holding exactly ``perms`` ("tokens.view_accesstoken", …), in no group."""
    from django.contrib.auth.models import Permission

    user = UserFactory(**({"username": username} if username else {}))
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def api_with_plans(*plan_names: str, **api_fields) -> tuple[Api, list[Plan]]:
    """An API and its plans, named as given ("Free", "Gold", …)."""
    api = ApiFactory(**api_fields)
    return api, [PlanFactory(api=api, name=name) for name in plan_names or ("Free",)]


def extra_fields_data(pairs=(), *, prefix="extra", initial=0, delete=()) -> dict[str, str]:
    """POST data of the Extra Fields formset: ``pairs`` of (name, value), rows to delete."""
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(pairs)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, (name, value) in enumerate(pairs):
        data[f"{prefix}-{index}-name"] = name
        data[f"{prefix}-{index}-value"] = value
    for index in delete:
        data[f"{prefix}-{index}-DELETE"] = "on"
    return data


def plans_data(plans=(), *, apis=None) -> dict[str, str]:
    """POST data of the APIs and Plans selects: every API "Not associated" but ``plans``."""
    data = {f"api_{api.pk}": "" for api in (apis if apis is not None else Api.objects.all())}
    data.update({f"api_{plan.api_id}": str(plan.pk) for plan in plans})
    return data


XSS = "<script>alert(1)</script>\"'"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;"


def assert_escaped(html: str) -> None:
    """The ``XSS`` text is on the page, escaped, and never raw."""
    assert "<script>alert(1)</script>" not in html
    assert "alert(1)</script>" not in html
    assert XSS_ESCAPED in html
