"""The Access Tokens list's quick search, Advanced filter and sorting (all in the query string)."""

from datetime import timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q
from django.forms.utils import flatatt
from django.http import QueryDict
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_filters.fields import ModelMultipleChoiceField
from django_filters.widgets import DateRangeWidget

from tokens import crypto
from tokens.models import (
    AccessToken,
    Api,
    App,
    AuditAction,
    AuditEvent,
    Plan,
    TokenOrigin,
    TokenStatus,
)

_MAX_ID = 2**63 - 1

# The Advanced filter "Last used". "Not used in N days" counts a token never used as not
# used: an administrator looking for idle tokens to clean up wants those first.
LAST_USED_CHOICES = [
    ("never", "Never used"),
    ("30", "Not used in 30 days"),
    ("90", "Not used in 90 days"),
]


def _widget_html(widget: dict) -> str:
    """A widget's HTML from its context, as Django's own templates write it (inputs,
    selects, and django-filter's two-input ranges joined by "-")."""
    if "subwidgets" in widget:
        return mark_safe("-".join(_widget_html(sub) for sub in widget["subwidgets"]))  # noqa: S308
    attrs = flatatt(widget["attrs"])
    if "optgroups" not in widget:
        value = widget["value"]
        return format_html(
            '<input type="{}" name="{}"{}{}>',
            widget["type"],
            widget["name"],
            format_html(' value="{}"', str(value)) if value is not None else "",
            attrs,
        )
    options = []
    for group_name, group_choices, _ in widget["optgroups"]:
        html = format_html_join(
            "",
            '\n  <option value="{}"{}>{}</option>',
            ((str(o["value"]), flatatt(o["attrs"]), o["label"]) for o in group_choices),
        )
        if group_name:
            html = format_html('\n  <optgroup label="{}">{}\n  </optgroup>', group_name, html)
        options.append(html)
    return format_html(
        '<select name="{}"{}>{}\n</select>',
        widget["name"],
        attrs,
        mark_safe("".join(options)),  # noqa: S308
    )


class PythonRendered:
    """Renders the widget in Python instead of through Django's widget templates: the
    Advanced filter draws about fifty inputs and options on every view of the list, and
    through the template engine they cost more than the list's own rows."""

    def render(self, name, value, attrs=None, renderer=None):
        return _widget_html(self.get_context(name, value, attrs)["widget"])


class SearchInput(PythonRendered, forms.TextInput):
    pass


class Select(PythonRendered, forms.Select):
    pass


class SelectMultiple(PythonRendered, forms.SelectMultiple):
    pass


class DateRange(PythonRendered, DateRangeWidget):
    pass


class IdsField(ModelMultipleChoiceField):
    """An id beyond 64 bits is an invalid choice, not a 500 (SQLite's driver overflows)."""

    def _check_values(self, value):
        for pk in value:
            try:
                number = int(str(pk))
            except ValueError:
                continue  # reported by the parent as a malformed id
            if not -_MAX_ID - 1 <= number <= _MAX_ID:
                raise ValidationError(
                    self.error_messages["invalid_choice"],
                    code="invalid_choice",
                    params={"value": pk},
                )
        return super()._check_values(value)


class IdsFilter(django_filters.ModelMultipleChoiceFilter):
    field_class = IdsField


class StableOrderingFilter(django_filters.OrderingFilter):
    """Sorting by a column with ties (owner, app, expiry…) also sorts by id: without it,
    PostgreSQL may return tied rows in a different order per page, repeating some rows
    on several pages and never showing others. The id runs in the column's direction,
    so that one index ``(column, id)`` serves both directions with no sort at all (a
    million tokens never used tie on "last used")."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if not qs.query.order_by:
            return qs
        first = str(qs.query.order_by[0])
        return qs.order_by(*qs.query.order_by, "-id" if first.startswith("-") else "id")


class TokenFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        widget=SearchInput(
            attrs={
                "class": "form-control",
                "type": "search",
                "placeholder": "Owner, app, code prefix, extra field value or a pasted full token",
            }
        ),
    )
    api = IdsFilter(
        label="API",
        queryset=Api.objects.all(),
        method="filter_api",
        widget=SelectMultiple(attrs={"class": "form-select"}),
    )
    # A token has one app: no DISTINCT needed (django-filter adds one by default, and a
    # DISTINCT over every column sorts all of an app's tokens before the first page).
    app = IdsFilter(
        label="App",
        queryset=App.objects.all(),
        distinct=False,
        widget=SelectMultiple(attrs={"class": "form-select"}),
    )
    status = django_filters.ChoiceFilter(
        label="Status",
        choices=TokenStatus.choices,
        method="filter_status",
        empty_label="Any",
        widget=Select(attrs={"class": "form-select"}),
    )
    origin = django_filters.ChoiceFilter(
        label="Origin",
        choices=TokenOrigin.choices,
        empty_label="Any",
        widget=Select(attrs={"class": "form-select"}),
    )
    plan = django_filters.ModelChoiceFilter(
        label="Plan",
        queryset=Plan.objects.select_related("api"),
        method="filter_plan",
        empty_label="Any",
        widget=Select(attrs={"class": "form-select"}),
    )
    created = django_filters.DateFromToRangeFilter(
        label="Created between",
        field_name="created_at",
        widget=DateRange(attrs={"type": "date", "class": "form-control"}),
    )
    expires = django_filters.DateFromToRangeFilter(
        label="Expires between",
        field_name="expires_at",
        widget=DateRange(attrs={"type": "date", "class": "form-control"}),
    )
    # "The tokens this job revoked" (the link at the end of a bulk revoke); not in the form.
    job = django_filters.UUIDFilter(method="filter_job", widget=forms.HiddenInput)
    expiring = django_filters.ChoiceFilter(
        label="Expiring soon",
        choices=[("soon", "Expiring soon")],
        method="filter_expiring",
        widget=Select(attrs={"class": "form-select"}),
    )
    last_used = django_filters.ChoiceFilter(
        label="Last used",
        choices=LAST_USED_CHOICES,
        method="filter_last_used",
        empty_label="Any",
        widget=Select(attrs={"class": "form-select"}),
    )
    o = StableOrderingFilter(
        label="Sort by",
        fields=(
            ("created_at", "created"),
            ("expires_at", "expires"),
            ("last_used_at", "last_used"),
            ("owner", "owner"),
            ("app_name", "app"),  # the token's copy of it: the joined name has no index
            ("prefix", "code"),
        ),
    )

    class Meta:
        model = AccessToken
        fields = [
            "q",
            "api",
            "app",
            "status",
            "origin",
            "plan",
            "created",
            "expires",
            "expiring",
            "last_used",
        ]

    def filter_search(self, queryset, name, value):
        # As long as the search box's POST keeps (tokens.views.listing): a longer text matches
        # nothing more, and SQLite refuses LIKE patterns beyond 50,000 bytes.
        return queryset.search(value[:500])

    def filter_status(self, queryset, name, value):
        return queryset.with_status(value)

    def filter_api(self, queryset, name, value):
        return queryset.with_api(value) if value else queryset

    def filter_job(self, queryset, name, value):
        return queryset.filter(
            Exists(
                AuditEvent.objects.filter(
                    token=OuterRef("pk"), job__public_id=value, action=AuditAction.REVOKED
                )
            )
        )

    def filter_plan(self, queryset, name, value):
        return queryset.with_plan([value])

    def filter_expiring(self, queryset, name, value):
        # The quick filter "Expiring soon" (the rule: tokens.models.EXPIRING_SOON_DAYS).
        return queryset.expiring_soon()

    def filter_last_used(self, queryset, name, value):
        # Both through token_last_used_id_idx (last_used_at, id): NULL is a range of it.
        if value == "never":
            return queryset.filter(last_used_at__isnull=True)
        since = timezone.now() - timedelta(days=int(value))
        return queryset.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=since))

    @property
    def expiring_soon(self) -> bool:
        """Whether the quick filter "Expiring soon" is on (its toggle shows pressed)."""
        return (self.data or {}).get("expiring") == "soon"

    @property
    def expiring_toggle_query(self) -> str:
        """The list's query string with "Expiring soon" switched over, from page one."""
        params = (self.data or QueryDict()).copy()
        params.pop("page", None)
        if self.expiring_soon:
            params.pop("expiring", None)
        else:
            params["expiring"] = "soon"
        return params.urlencode()

    @property
    def advanced_active(self) -> bool:
        """Whether any Advanced filter (anything but quick search, the quick filter and
        sort) is set."""
        data = self.data or {}
        return any(
            data.get(key) for key in self.Meta.fields if key not in ("q", "expiring")
        ) or any(
            data.get(f"{key}_{end}")
            for key in ("created", "expires")
            for end in ("after", "before")
        )


def token_filter(params, *, request=None, queryset=None) -> TokenFilter:
    """The Access Tokens list's filter of ``params`` (its query string): what the list
    shows, and what its bulk revoke and CSV export act on. ``.qs`` has the tokens (an
    invalid filter is left out, as the list does; ``.form.errors`` says which)."""
    return TokenFilter(
        params or None,
        queryset=AccessToken.objects.with_list_columns() if queryset is None else queryset,
        request=request,
    )


def without_pasted_secret(params):
    """``params`` with a pasted full token in ``q`` replaced by its masked code, which
    finds the same token by its display prefix, so the page never echoes the secret
    (search box, sort and page links all repeat ``q``)."""
    query = params.get("q", "").strip()
    if not crypto.looks_like_token(query):
        return params
    token = AccessToken.objects.by_secret(query).only("prefix", "suffix").first()
    params = params.copy()
    params["q"] = token.masked_code if token else crypto.display_parts(query)[0]
    return params
