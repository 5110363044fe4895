"""Every kind of answer carries the security headers; no page needs inline script or style."""

import base64
import hashlib
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from portal.middleware import content_security_policy
from tests.factories import AppFactory, PlanFactory, UserFactory, make_token

pytestmark = pytest.mark.django_db


class InlineFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, handlers, style attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.style_blocks: list[str] = []
        self._in_style = False
        self._in_inline_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name, value in attrs.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…> event handler")
            if name == "style":
                self.problems.append(f"<{tag} style=“{value}”>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}=javascript:…>")
        executable = (attrs.get("type") or "text/javascript") != "application/json"
        if tag == "script" and "src" not in attrs and executable:
            self._in_inline_script = True
        if tag == "style":
            self._in_style = True
            self.style_blocks.append("")

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data):
        if self._in_style:
            self.style_blocks[-1] += data
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:60]}")


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def assert_common_headers(response, label):
    csp = response["Content-Security-Policy"]
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in csp.split(";") if part.strip()
    )
    assert directives["default-src"] == "'none'", label
    assert directives["script-src"] == "'self'", label
    assert directives["frame-ancestors"] == "'none'", label
    assert directives["object-src"] == "'none'", label
    assert directives["base-uri"] == "'none'", label
    assert directives["form-action"] == "'self'", label
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, label
    assert response["X-Content-Type-Options"] == "nosniff", label
    assert response["Referrer-Policy"] == "same-origin", label
    assert response["X-Frame-Options"] == "DENY", label
    assert "no-store" in response["Cache-Control"], label
    assert "camera=()" in response["Permissions-Policy"], label
    assert response["Cross-Origin-Opener-Policy"] == "same-origin", label


def assert_no_inline_code(response, label):
    finder = InlineFinder()
    finder.feed(response.content.decode())
    assert finder.problems == [], f"{label}: {finder.problems}"
    allowed = response["Content-Security-Policy"]
    for block in finder.style_blocks:
        assert csp_hash(block) in allowed, f"{label}: inline <style> not allowed by hash"


@pytest.fixture
def platform():
    plan = PlanFactory(name="Gold", api__base_path="/payments")
    app = AppFactory(name="Acme", client_secret="tpcs_x")
    active, _ = make_token(app=app, plans=[plan])
    return {"plan": plan, "app": app, "token": active}


def portal_pages(token):
    return {
        "list": reverse("tokens:list"),
        "list filtered": reverse("tokens:list") + "?status=active&o=-created",
        "overview": reverse("tokens:detail", args=[token.public_id]),
        "edit": reverse("tokens:edit", args=[token.public_id]),
        "revoke": reverse("tokens:revoke", args=[token.public_id]),
        "history": reverse("tokens:history", args=[token.public_id]),
        "new": reverse("tokens:create"),
        "two-factor status": reverse("account-security"),
        "two-factor enrolment": reverse("mfa-setup"),
    }


def test_every_portal_page_has_the_headers_and_no_inline_code(client, platform):
    admin = UserFactory(username="boss", groups=["Portal administrators"])
    client.force_login(admin)
    for label, url in portal_pages(platform["token"]).items():
        response = client.get(url)
        assert response.status_code == 200, label
        assert_common_headers(response, label)
        assert_no_inline_code(response, label)


def test_the_token_created_page_is_never_stored(portal_admin_client, platform):
    response = portal_admin_client.post(
        reverse("tokens:create"),
        {
            "app": platform["app"].pk,
            "owner": "Grace",
            "use_subscriptions": "on",
            "extra-TOTAL_FORMS": "0",
            "extra-INITIAL_FORMS": "0",
            "nonce": "n-1",
        },
    )
    assert response.status_code == 200
    assert b"tpk_" in response.content  # the one time it is shown
    assert_common_headers(response, "token created")
    assert_no_inline_code(response, "token created")


def test_login_error_and_denied_pages_have_the_headers(client, plain_user):
    pages = {"login": (reverse("login"), 200), "not found": ("/tokens/nope/", 404)}
    for label, (url, status) in pages.items():
        response = client.get(url)
        assert response.status_code == status, label
        assert_common_headers(response, label)
        assert_no_inline_code(response, label)
    client.force_login(plain_user)
    response = client.get(reverse("tokens:list"))
    assert response.status_code == 403
    assert_common_headers(response, "403")
    assert_no_inline_code(response, "403")


def test_django_admin_pages_have_the_headers_and_no_unhashed_inline_code(client, platform):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    token = platform["token"]
    pages = {
        "index": reverse("admin:index"),
        "tokens": reverse("admin:tokens_accesstoken_changelist"),
        "token": reverse("admin:tokens_accesstoken_change", args=[token.pk]),
        "history": reverse("admin:tokens_auditevent_changelist"),
        "apps": reverse("admin:tokens_app_changelist"),
        "app": reverse("admin:tokens_app_change", args=[platform["app"].pk]),
        "new api": reverse("admin:tokens_api_add"),
        "users": reverse("admin:auth_user_changelist"),
        "user": reverse("admin:auth_user_change", args=[root.pk]),
        "groups": reverse("admin:auth_group_changelist"),
    }
    for label, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, label
        assert_common_headers(response, f"admin {label}")
        assert_no_inline_code(response, f"admin {label}")


def test_the_admin_changelist_inline_style_is_allowed_by_its_hash():
    from django.template.loader import get_template

    source = get_template("admin/change_list.html").template.source
    block = source.split("<style>", 1)[1].split("</style>", 1)[0]
    assert csp_hash(block) in content_security_policy()


@pytest.mark.parametrize(
    "method, url",
    [
        ("post", "/oauth/token/"),
        ("post", "/oauth/revoke/"),
        ("post", "/oauth/introspect/"),
        ("get", "/oauth/token/"),
        ("get", "/gateway/auth"),
    ],
)
def test_api_answers_have_the_headers_and_are_never_stored(client, method, url):
    if method == "post":
        response = client.post(
            url, "grant_type=client_credentials", content_type="application/x-www-form-urlencoded"
        )
    else:
        response = client.get(url)
    assert response.status_code in (400, 401, 405)
    assert_common_headers(response, url)


def test_gateway_success_is_never_stored(client, platform):
    _, secret = make_token(app=platform["app"], plans=[platform["plan"]])
    response = client.get(
        "/gateway/auth",
        headers={"authorization": f"Bearer {secret}", "x-original-uri": "/payments/charge"},
    )
    assert response.status_code == 200
    assert_common_headers(response, "gateway 200")


def test_hsts_on_https_answers(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    response = client.get(reverse("login"), secure=True)
    assert response["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains; preload")


def test_cookies_are_httponly_samesite_and_secure_in_production(client, settings, portal_admin):
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    response = client.get(reverse("login"), secure=True)
    csrf = response.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["secure"] and csrf["httponly"] and csrf["samesite"] == "Lax"
    response = client.post(
        reverse("login"),
        {"username": portal_admin.username, "password": "correct horse battery staple"},
        secure=True,
    )
    assert response.status_code == 302
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


def test_static_files_may_be_cached(client):
    response = client.get("/static/css/portal.css")
    assert "no-store" not in response.get("Cache-Control", "")


def test_client_address_is_read_from_trusted_proxies_only(settings):
    from portal.middleware import client_address

    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9"}
    assert client_address(meta, 0) == "10.0.0.2"
    assert client_address(meta, 1) == "203.0.113.9"  # what our proxy saw; 6.6.6.6 is forged
    assert client_address(meta, 3) == "10.0.0.2"  # fewer hops than proxies: not trusted
    assert client_address({**meta, "HTTP_X_FORWARDED_FOR": "junk"}, 1) == "10.0.0.2"
