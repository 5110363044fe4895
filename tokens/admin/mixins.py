"""What the admin's pages share: lists that answer bad input with a message or a 400
instead of a 500, a search box that keeps pasted secrets out of URLs, saves that report a
failed cache purge instead of hiding a committed change behind a 500, read-only rows, and
the one way the admin's own pages (confirmations, a secret shown once) are rendered."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, SuspiciousOperation
from django.db import router, transaction
from django.db.models import IntegerField
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from tokens import crypto
from tokens.gateway.cache import CachePurgeFailed
from tokens.models import AccessToken

# Marks the POST of the search box (see ``SecretSafeSearchMixin``).
SEARCH_POST_MARKER = "_search"


class LabelledTabularInline(admin.TabularInline):
    """A tabular inline whose inputs each have an accessible name ("Name, row 2").

    Django names a tabular inline's inputs only by their column header, which screen
    readers do not announce for a form control (axe-core's critical ``label`` rule).
    """

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        add_fields = formset.add_fields

        def add_labelled_fields(formset_self, form, index):
            add_fields(formset_self, form, index)
            row = f"row {index + 1}" if index is not None else "new row"
            for name, field in form.fields.items():
                if field.widget.is_hidden:
                    continue
                label = field.label or name.replace("_", " ").capitalize()
                field.widget.attrs["aria-label"] = f"{label}, {row}"

        formset.add_fields = add_labelled_fields
        return formset


class TokenAdminMedia:
    css = {"all": ["admin_extra/tokens.css"]}


class AdminPageMixin:
    """The admin's own pages beyond add, change and delete (a confirmation, a secret shown
    once) are rendered here, with the site's context as admin gives its own pages."""

    def render_admin_page(self, request, template: str, context: dict):
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "media": self.media,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                **context,
            },
        )


# --- Bad list input ------------------------------------------------------------------


def is_row_id(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) < 2**63


def row_id(value) -> int | None:
    """``value`` as a row id; None unless it is ASCII digits within 64 bits ("²" and "٣"
    are digits to Python, and SQLite's driver overflows beyond 64 bits)."""
    return int(value) if isinstance(value, str) and is_row_id(value) else None


class CheckedSelectionMixin:
    """A forged action selection (not row ids) gets a message, not a 500."""

    def response_action(self, request, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(is_row_id(value) for value in selected):
            self.message_user(
                request, "The selection was not understood; select the rows again.", messages.ERROR
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


class BadListQuery(SuspiciousOperation):
    """A list's query string holds a value that no database can compare: answered 400."""


def _integer_target(model, key: str) -> bool:
    """Whether the lookup ``key`` (``app``, ``app__id__in``…) compares an integer column."""
    parts = key.split(LOOKUP_SEP)
    if parts[-1] == "isnull":
        return False
    for end in range(len(parts), 0, -1):
        try:
            field = get_fields_from_path(model, LOOKUP_SEP.join(parts[:end]))[-1]
        except (FieldDoesNotExist, NotRelationField):
            continue
        field = getattr(field, "target_field", field) if field.is_relation else field
        return isinstance(field, IntegerField)
    return False


class CheckedChangeList(ChangeList):
    """A list filter's value that no database can compare is answered 400, not a 500
    (and not admin's "Database error" page): NUL anywhere, which PostgreSQL refuses in
    a text literal, and, for an integer column, a number beyond 64 bits, which SQLite's
    driver cannot even send. Every filter's and lookup's value passes here."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        for key, values in lookup_params.items():
            if "\x00" in key or any("\x00" in value for value in values):
                raise BadListQuery("NUL in a list filter")
        return lookup_params

    def get_filters(self, request):
        try:
            filters = super().get_filters(request)
        except OverflowError as error:  # the date hierarchy's day 2147483648 (admin's own)
            raise BadListQuery("A date beyond the calendar in the list filter") from error
        remaining = filters[2]  # the lookups no list filter took, applied as given
        for key, values in remaining.items():
            if not _integer_target(self.model, key):
                continue
            for value in values:
                # An __in lookup's value arrives split already (a list), else a string.
                for number in value if isinstance(value, list) else value.split(","):
                    try:
                        out_of_range = not -(2**63) <= int(number) < 2**63
                    except ValueError:
                        continue  # not a number: admin's own ?e=1
                    if out_of_range:
                        raise BadListQuery(f"An id beyond 64 bits in the list filter {key}")
        return filters


class CheckedListMixin:
    def get_changelist(self, request, **kwargs):
        return CheckedChangeList


# --- Changes and rows ----------------------------------------------------------------


class ReportsPurgeFailures:
    """Saving or deleting an API, plan or app purges what the gateways cache of it once
    the change commits; when the cache cannot be reached, ``CachePurgeFailed`` comes
    after the commit. The change stands: the page says so and how to retry (a save
    purges again), instead of a 500 that hides that the change was saved.

    Each view runs in a transaction of its own, so that the purges (made when it
    commits) fail here, with the view's answer in hand.
    """

    purge_retry_hint = "Save it again (or any API, plan or app) to purge again."

    def reporting_purge_failures(self, request, view, *args, **kwargs):
        if request.method != "POST":  # only a POST changes anything
            return view(request, *args, **kwargs)
        response = None
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                response = view(request, *args, **kwargs)
        except CachePurgeFailed as failure:
            if response is None:  # raised inside: nothing was committed
                raise
            self.message_user(request, f"{failure.message} {self.purge_retry_hint}", messages.ERROR)
        return response

    def changeform_view(self, request, *args, **kwargs):
        return self.reporting_purge_failures(request, super().changeform_view, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        return self.reporting_purge_failures(request, super().delete_view, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        # Actions (delete selected, regenerate secret) run here.
        return self.reporting_purge_failures(request, super().changelist_view, *args, **kwargs)


class ReadOnlyAdminMixin:
    """Nobody adds, changes or deletes these rows in admin; viewing needs the view permission."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Search --------------------------------------------------------------------------


class SecretSafeSearchMixin:
    """The search box POSTs, so that a pasted full token never lands in a URL.

    A full token found by its digest opens that token's page; any other term is
    redirected to the usual ``?q=`` search (owner names may be in URLs, secrets may not).
    A hand-made ``?q=`` holding a full token is answered the same way, so no page ever
    echoes a secret (the search box, sort and filter links would all repeat ``q``).
    """

    search_by_post = True

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and SEARCH_POST_MARKER in request.POST:
            term = request.POST.get("q", "")
        elif request.method == "GET" and crypto.looks_like_token(request.GET.get("q", "").strip()):
            term = request.GET["q"]
        else:
            return super().changelist_view(request, extra_context)
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return self.search_redirect(request, term.strip())

    def search_redirect(self, request, term: str):
        params = request.GET.copy()
        for key in ("q", "p", "e"):
            params.pop(key, None)
        if crypto.looks_like_token(term):
            token = AccessToken.objects.by_secret(term).first()
            if token is not None:
                return HttpResponseRedirect(self.url_for_pasted_token(token))
            messages.warning(request, "No token matches the pasted token.")
        elif term.startswith(crypto.TOKEN_PREFIX) and len(term) > crypto.DISPLAY_PREFIX_LENGTH:
            # Nearly a token (a typo fails its checksum): what may be most of a secret
            # stays out of the URL; the code prefix is all the search uses anyway.
            messages.warning(
                request,
                "That is not a complete, valid token (a character may be wrong or missing); "
                "showing the tokens whose code starts the same way.",
            )
            params["q"] = term[: crypto.DISPLAY_PREFIX_LENGTH]
        elif term:
            params["q"] = term
        query = params.urlencode()
        return HttpResponseRedirect(request.path + (f"?{query}" if query else ""))

    def url_for_pasted_token(self, token: AccessToken) -> str:
        # The token's page, with its history: what support came for.
        return reverse("admin:tokens_accesstoken_change", args=[token.pk])
