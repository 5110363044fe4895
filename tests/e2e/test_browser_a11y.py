"""Every screen of the portal and of Django admin, at 1366 px and on a 390 px phone, checked
by axe-core (WCAG 2.2 AA rules) in a real Chromium: no serious or critical violation.

Each screen is also photographed. The pictures go to ``$SCREENSHOTS_DIR`` when it is set
(``SCREENSHOTS_DIR=docs/screenshots`` regenerates the README's pictures), otherwise to a
temporary directory, so that taking them is exercised on every run; a test below checks
that ``docs/screenshots/`` holds one picture of every screen at both widths.
"""

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from tests.e2e.browser import log_in
from tests.factories import AppFactory, PlanFactory, UserFactory, make_token
from tokens import jobs, services
from tokens.models import JobKind

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
WIDTHS = {"desktop": (1366, 800), "phone": (390, 844)}
# axe-core's tags for WCAG 2.0, 2.1 and 2.2, levels A and AA.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING = {"serious", "critical"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass(frozen=True)
class Screen:
    name: str  # also the picture's file name
    path: str  # a format string over the platform's ids
    action: str = ""  # what to do once there (see ``prepare``)
    who: str = "admin"  # "admin" (superuser, portal administrator), "anonymous", "mfa"


PORTAL = [
    Screen("login", "/accounts/login/", who="anonymous"),
    Screen("login-failed", "/accounts/login/", action="bad-login", who="anonymous"),
    Screen("token-list", "/tokens/"),
    Screen("token-list-filter", "/tokens/?status=active&api={api}", action="open-filter"),
    Screen("token-list-empty", "/tokens/?q=nothing-matches-this"),
    Screen("token-overview", "/tokens/{token}/"),
    Screen("token-overview-apis", "/tokens/{token}/", action="apis-tab"),
    Screen("token-overview-revoked", "/tokens/{revoked}/"),
    Screen("token-edit", "/tokens/{token}/edit/"),
    Screen("token-edit-invalid", "/tokens/{token}/edit/", action="clear-owner"),
    Screen("token-revoke", "/tokens/{token}/revoke/"),
    Screen("token-history", "/tokens/{token}/history/"),
    Screen("token-rotate", "/tokens/{rotatable}/rotate/"),
    Screen("token-rotated", "/tokens/{rotatable}/rotate/", action="confirm"),
    Screen("token-create", "/tokens/new/"),
    Screen("token-created", "/tokens/new/", action="create"),
    Screen("bulk-revoke", "/tokens/revoke-selected/?all=1&filter=app%3D{app}"),
    Screen("app-revoke", "/tokens/apps/{app}/revoke-all/"),
    Screen("jobs", "/tokens/jobs/"),
    Screen("job", "/tokens/jobs/{job}/"),
    Screen("notifications", "/tokens/notifications/"),
    Screen("security-off", "/accounts/security/"),
    Screen("security-menu", "/accounts/security/", action="user-menu"),
    Screen("mfa-setup", "/accounts/mfa/setup/"),
    Screen("mfa-verify", "/accounts/mfa/", who="mfa"),
    Screen("security-on", "/accounts/security/", who="enrolled"),
    Screen("recovery-codes-confirm", "/accounts/security/recovery-codes/", who="enrolled"),
    Screen("recovery-codes", "/accounts/security/recovery-codes/", "confirm", who="enrolled"),
    # After the codes: a wrong code makes the device wait a second before the next one.
    Screen("mfa-verify-failed", "/accounts/mfa/", action="bad-code", who="mfa"),
    Screen("not-found", "/tokens/00000000-0000-0000-0000-000000000000/"),
]

ADMIN = [
    Screen("admin-index", "/admin/"),
    Screen("admin-tokens", "/admin/tokens/accesstoken/"),
    Screen("admin-tokens-search", "/admin/tokens/accesstoken/?q=Ada"),
    Screen("admin-token", "/admin/tokens/accesstoken/{token_pk}/change/"),
    Screen("admin-token-revoke", "/admin/tokens/accesstoken/{token_pk}/revoke/"),
    Screen("admin-token-history", "/admin/tokens/accesstoken/{token_pk}/history/"),
    Screen("admin-apps", "/admin/tokens/app/"),
    Screen("admin-app", "/admin/tokens/app/{app}/change/"),
    Screen("admin-app-add", "/admin/tokens/app/add/"),
    Screen("admin-app-revoke-all", "/admin/tokens/app/{app}/revoke-all-tokens/"),
    Screen("admin-app-regenerate", "/admin/tokens/app/{app}/regenerate-secret/"),
    Screen("admin-apis", "/admin/tokens/api/"),
    Screen("admin-api", "/admin/tokens/api/{api}/change/"),
    Screen("admin-audit", "/admin/tokens/auditevent/"),
    Screen("admin-jobs", "/admin/tokens/job/"),
    Screen("admin-job", "/admin/tokens/job/{job_pk}/change/"),
    Screen("admin-users", "/admin/auth/user/"),
    Screen("admin-user", "/admin/auth/user/{user}/change/"),
    Screen("admin-groups", "/admin/auth/group/"),
]


@pytest.fixture
def platform(db):
    gold = PlanFactory(name="Gold", api__name="Payments", api__base_path="/payments")
    silver = PlanFactory(name="Silver", api=gold.api)
    free = PlanFactory(name="Free", api__name="Weather", api__base_path="/weather")
    app = AppFactory(name="Acme Checkout")
    admin = UserFactory(
        username="ada", password=PASSWORD, is_staff=True, is_superuser=True,
        groups=["Portal administrators"],
    )  # fmt: skip
    token, _ = make_token(
        app=app,
        owner="Ada Lovelace",
        plans=[gold],
        extra_fields=[["Ticket", "T-1042"], ["Team", "Payments"]],
        expires_at=timezone.now() + timedelta(days=90),
        actor=admin,
    )
    services.token_update(
        token=token,
        expected_version=token.version,
        owner="Ada King",
        extra_fields=[["Ticket", "T-1042"], ["Team", "Payments"]],
        plans=[gold, free],
        actor=admin,
    )
    make_token(
        app=app, owner="Grace Hopper", plans=[silver], expires_at=timezone.now() + timedelta(days=3)
    )
    make_token(
        app=AppFactory(name="Globex Mobile"), owner="Alan Turing", plans=[silver], expired=True
    )
    revoked, _ = make_token(app=app, owner="Edsger Dijkstra", plans=[gold], revoked=True)
    victim, _ = make_token(app=app, owner="Barbara Liskov", plans=[gold])
    rotatable, _ = make_token(app=app, owner="Margaret Hamilton", plans=[gold])
    job = jobs.start(
        kind=JobKind.BULK_REVOKE,
        actor=admin,
        description="1 selected token",
        total=1,
        query=f"token={victim.public_id}",
        reason="Left the company",
    )
    enrolled = UserFactory(username="grace", password=PASSWORD, groups=["Portal administrators"])
    mfa.new_recovery_codes(enrolled)
    TOTPDevice.objects.create(user=enrolled, name="app", confirmed=True)
    return {
        "token": token.public_id,
        "token_pk": token.pk,
        "revoked": revoked.public_id,
        "rotatable": rotatable.public_id,
        "app": app.pk,
        "api": gold.api.pk,
        "job": job.public_id,
        "job_pk": job.pk,
        "user": admin.pk,
    }


def prepare(page, screen: Screen) -> None:
    if screen.action == "open-filter":
        advanced = page.locator("details", has=page.locator("summary", has_text="Advanced filter"))
        if not advanced.evaluate("details => details.open"):
            advanced.locator("summary").click()
    elif screen.action == "apis-tab":
        page.get_by_role("tab", name="APIs and Plans").click()
    elif screen.action == "user-menu":
        page.locator("[data-user-menu] summary").click()
    elif screen.action == "bad-login":
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
    elif screen.action == "bad-code":
        page.get_by_label("Code").fill("000000")
        page.get_by_role("button", name="Verify").click()
        page.wait_for_load_state()
    elif screen.action == "clear-owner":
        page.get_by_label("Owner").fill("")
        page.get_by_role("button", name="Save Edit").click()
        page.wait_for_load_state()
    elif screen.action == "confirm":
        page.get_by_role("button", name=re.compile("CONFIRM|Yes, generate")).click()
        page.wait_for_load_state()
    elif screen.action == "create":
        page.get_by_label("App").select_option(label="Acme Checkout")
        page.get_by_label("Owner").fill("Katherine Johnson")
        page.get_by_role("button", name=re.compile("Create|Save|Generate")).click()
        page.wait_for_load_state()


def blocking_violations(page) -> list[str]:
    """axe-core's serious and critical WCAG 2.x A/AA violations: rule, impact, where."""
    result = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
    found = []
    for violation in result.response["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        for node in violation["nodes"]:
            summary = node.get("failureSummary", "").splitlines()[-1:] or [""]
            found.append(
                f"{violation['id']} ({violation['impact']}) {node['target']}: {summary[0].strip()}"
            )
    return found


def no_sideways_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def check_screens(chromium, live_server, ids, screens, width, shots: Path):
    viewport_width, height = WIDTHS[width]
    problems: dict[str, list[str]] = {}
    contexts = {}

    def page_for(who: str):
        if who not in contexts:
            context = chromium.new_context(
                viewport={"width": viewport_width, "height": height},
                reduced_motion="reduce",  # no colour caught halfway through a transition
            )
            context.set_default_timeout(10_000)
            page = context.new_page()
            if who == "admin":
                log_in(page, live_server.url, "ada", PASSWORD)
                page.wait_for_url(re.compile(r"/tokens/$"))
            elif who in ("mfa", "enrolled"):
                log_in(page, live_server.url, "grace", PASSWORD)
                page.wait_for_url(re.compile(r"/accounts/mfa/"))
            if who == "enrolled":
                device = TOTPDevice.objects.get(user__username="grace")
                page.get_by_label("Code").fill(f"{totp(device.bin_key):06d}")
                page.get_by_role("button", name="Verify").click()
                page.wait_for_url(re.compile(r"/tokens/$"))
            contexts[who] = (context, page)
        return contexts[who][1]

    try:
        for screen in screens:
            page = page_for(screen.who)
            page.goto(live_server.url + screen.path.format(**ids))
            prepare(page, screen)
            found = blocking_violations(page)
            if width == "phone" and not no_sideways_scroll(page):
                found.append("the page scrolls sideways at 390 px")
            if found:
                problems[screen.name] = found
            page.screenshot(path=shots / f"{screen.name}-{width}.png", full_page=True)
    finally:
        for context, _ in contexts.values():
            context.close()
    return problems


def report(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}:\n  " + "\n  ".join(found) for name, found in problems.items())


@pytest.fixture
def shots(tmp_path) -> Path:
    directory = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.mark.parametrize("width", WIDTHS)
def test_every_portal_screen_passes_axe(chromium, live_server, platform, width, shots):
    problems = check_screens(chromium, live_server, platform, PORTAL, width, shots)
    assert problems == {}, report(problems)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_admin_screen_passes_axe(chromium, live_server, platform, width, shots):
    problems = check_screens(chromium, live_server, platform, ADMIN, width, shots)
    assert problems == {}, report(problems)


def test_docs_hold_a_picture_of_every_screen_at_both_widths():
    expected = {f"{s.name}-{w}.png" for s in PORTAL + ADMIN for w in WIDTHS}
    present = {p.name for p in SCREENSHOTS.glob("*.png")}
    assert sorted(expected - present) == [], (
        "run: SCREENSHOTS_DIR=docs/screenshots pytest " + __file__
    )
    assert sorted(present - expected) == [], "pictures of screens the suite no longer checks"
