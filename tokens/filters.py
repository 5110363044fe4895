"""The Access Tokens list's quick search, Advanced filter and sorting (all in the query string)."""

from datetime import timedelta
from functools import cached_property
from typing import NamedTuple

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q
from django.forms.utils import flatatt
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_filters.fields import DateRangeField, ModelChoiceIterator, ModelMultipleChoiceField
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
    """A widget's HTML from its context, as Django's own templates write it (inputs and
    selects)."""
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


class CheckboxList(forms.CheckboxSelectMultiple):
    """One labelled checkbox per choice, in a box of limited height that scrolls
    (tokens/_filter_field.html puts it in a fieldset, with a search box that
    static/js/filters.js makes narrow the list). Rendered in Python, as PythonRendered."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '\n  <div class="form-check" data-choice><input type="checkbox" name="{}" value="{}"{}>'
            '<label class="form-check-label" for="{}">{}</label></div>',
            (
                (o["name"], str(o["value"]), flatatt(o["attrs"]), o["attrs"]["id"], o["label"])
                for _, group, _ in widget["optgroups"]
                for o in group
            ),
        )
        return format_html(
            '<div class="choice-list" id="{}" data-choice-list>{}\n</div>',
            widget["attrs"]["id"],
            options,
        )


class DateRange(DateRangeWidget):
    """django-filter's two date inputs, each with its own label: "Created from" and
    "Created to" to a screen reader, a visible "from" and "to" beside the inputs (the
    fieldset's legend, "Created between", names the pair). Rendered in Python, as
    PythonRendered."""

    def __init__(self, noun: str, attrs=None):
        self.noun = noun
        super().__init__(attrs)

    def render(self, name, value, attrs=None, renderer=None):
        subwidgets = self.get_context(name, value, attrs)["widget"]["subwidgets"]
        parts = format_html_join(
            "",
            '<div class="date-range-end"><label for="{}"><span class="visually-hidden">{} </span>'
            "{}</label>{}</div>",
            (
                (sub["attrs"]["id"], self.noun, word, _widget_html(sub))
                for sub, word in zip(subwidgets, ("from", "to"), strict=True)
            ),
        )
        return format_html('<div class="date-range">{}</div>', parts)


class _OnceChoiceIterator(ModelChoiceIterator):
    """The choices read from the database once per form: the checkbox list and the
    applied filters' chips (TokenFilter.applied) both name the options."""

    def __iter__(self):
        cached = self.field.__dict__.get("_choices_read")
        if cached is None:
            cached = self.field.__dict__["_choices_read"] = list(super().__iter__())
        return iter(cached)


class IdsField(ModelMultipleChoiceField):
    """An id beyond 64 bits is an invalid choice, not a 500 (SQLite's driver overflows)."""

    iterator = _OnceChoiceIterator

    def __deepcopy__(self, memo):
        result = super().__deepcopy__(memo)
        result.__dict__.pop("_choices_read", None)
        return result

    def choice_labels(self) -> dict[int, str]:
        """Each choice's label by its id."""
        return {int(str(value)): str(label) for value, label in self.choices}

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


class OrderedDateRangeField(DateRangeField):
    """A date range whose start is after its end matches nothing: it is an error that
    says so (the list then leaves the range out, as any filter it cannot read), not an
    empty list that looks like "no tokens"."""

    def compress(self, data_list):
        if data_list and all(data_list) and data_list[0] > data_list[1]:
            start, stop = data_list
            raise ValidationError(
                "The start date %(start)s is after the end date %(stop)s.",
                code="reversed_range",
                params={"start": start.isoformat(), "stop": stop.isoformat()},
            )
        return super().compress(data_list)


class DateRangeFilter(django_filters.DateFromToRangeFilter):
    field_class = OrderedDateRangeField


class AppliedFilter(NamedTuple):
    """One applied filter value, as a chip above the list shows it: its words and the
    list's address without it."""

    label: str
    remove_url: str


def _as_id(value) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


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
        widget=CheckboxList(attrs={"class": "form-check-input"}),
    )
    # A token has one app: no DISTINCT needed (django-filter adds one by default, and a
    # DISTINCT over every column sorts all of an app's tokens before the first page).
    app = IdsFilter(
        label="App",
        queryset=App.objects.all(),
        distinct=False,
        widget=CheckboxList(attrs={"class": "form-check-input"}),
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
    created = DateRangeFilter(
        label="Created between",
        field_name="created_at",
        widget=DateRange("Created", attrs={"type": "date", "class": "form-control"}),
    )
    expires = DateRangeFilter(
        label="Expires between",
        field_name="expires_at",
        widget=DateRange("Expires", attrs={"type": "date", "class": "form-control"}),
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

    @cached_property
    def applied(self) -> list[AppliedFilter]:
        """The filter values the list applies, one per chip above it ("API: Payments v1"),
        each with the list's address without that one value. A value the form could not
        read is not applied, so it has no chip."""
        if not self.is_bound:
            return []
        self.form.is_valid()  # cleaned_data: the values read
        cleaned, fields = self.form.cleaned_data, self.form.fields
        chips = []

        def chip(label, *, drop=(), drop_value=None):
            params = self.data.copy()
            for key in ("page", *drop):
                params.pop(key, None)
            if drop_value:
                key, pk = drop_value
                params.setlist(key, [v for v in params.getlist(key) if _as_id(v) != pk])
            chips.append(AppliedFilter(label, self._list_url(params)))

        for name, field in fields.items():
            value = cleaned.get(name)
            if name == "o" or value in (None, ""):
                continue
            if name == "q":
                chip(f"Search: {_shorten(value)}", drop=[name])
            elif name in ("api", "app"):
                labels, seen = field.choice_labels(), set()
                for pk in map(_as_id, self.data.getlist(name)):
                    if pk in labels and pk not in seen:
                        seen.add(pk)
                        chip(f"{field.label}: {labels[pk]}", drop_value=(name, pk))
            elif name in ("created", "expires"):
                noun = field.widget.noun
                start = value.start.date().isoformat() if value.start else None
                stop = value.stop.date().isoformat() if value.stop else None
                if start and stop:
                    words = f"{start} to {stop}"
                else:
                    words = f"on or after {start}" if start else f"on or before {stop}"
                chip(f"{noun}: {words}", drop=[f"{name}_after", f"{name}_before"])
            elif name == "job":
                chip("Revoked by a job", drop=[name])
            elif name == "expiring":
                chip("Expiring soon", drop=[name])
            else:
                label = dict(field.choices).get(value, value) if name != "plan" else value
                chip(f"{field.label}: {label}", drop=[name])
        return chips

    @property
    def clear_url(self) -> str:
        """The list without any filter, in the same order and page size."""
        params = QueryDict(mutable=True)
        for key in ("o", "per_page"):
            if (self.data or {}).get(key):
                params[key] = self.data[key]
        return self._list_url(params)

    @staticmethod
    def _list_url(params) -> str:
        query = params.urlencode()
        return reverse("tokens:list") + (f"?{query}" if query else "")


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
