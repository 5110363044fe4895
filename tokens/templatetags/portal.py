from datetime import datetime

from django import template
from django.utils.html import conditional_escape, escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from portal import timefmt
from tokens.models import EXPIRING_SOON_DAYS

register = template.Library()

STATUS_CLASSES = {
    "active": "text-bg-success",
    "expired": "text-bg-secondary",
    "revoked": "text-bg-danger",
}

FIELD_LABELS = {
    "app": "App",
    "owner": "Owner",
    "origin": "Origin",
    "expires_at": "Expires",
    "extra_fields": "Extra Fields",
    "apis": "APIs and Plans",
    "revoked_at": "Revoked at",
    "revocation_reason": "Reason",
}


@register.filter
def status_class(status) -> str:
    return STATUS_CLASSES.get(str(status), "text-bg-light")


# Beside Active: dark text on yellow (Bootstrap's text-bg-warning, contrast 11:1).
_EXPIRES_SOON_BADGE = mark_safe(  # noqa: S308 (a constant)
    ' <span class="badge text-bg-warning badge-expires-soon"'
    f' title="Expires within {EXPIRING_SOON_DAYS} days">'
    '<i class="fa-solid fa-hourglass-half me-1" aria-hidden="true"></i>Expires soon</span>'
)


@register.simple_tag
def expiring_soon_days() -> int:
    """How many days "Expiring soon" looks ahead (``EXPIRING_SOON_DAYS``)."""
    return EXPIRING_SOON_DAYS


@register.filter
def expires_soon_badge(token) -> str:
    """The badge "Expires soon" (after a space) for an Active token that expires within
    ``EXPIRING_SOON_DAYS`` (``AccessToken.expires_soon``), else nothing."""
    return _EXPIRES_SOON_BADGE if token.expires_soon else ""


@register.filter
def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


def _time_text(value) -> str:
    """A change's value as text: a datetime, or an ISO 8601 string of one (how audit
    entries keep times), as a ``<time>`` in the exact format; anything else escaped."""
    when_value = value if isinstance(value, datetime) else timefmt.parse_iso(value)
    if when_value is not None:
        return when(when_value)
    return escape(str(value))


@register.filter
def change_text(value) -> SafeString:
    """An audit value as one readable line, escaped here (values can be anyone's text):
    times in the portal's format, in a ``<time>`` element."""
    if value is None or value == "" or value == [] or value == {}:
        return mark_safe("—")
    if isinstance(value, dict):
        text = "; ".join(f"{escape(key)}: {_time_text(val)}" for key, val in value.items())
    elif isinstance(value, list):
        if all(isinstance(item, list | tuple) and len(item) == 2 for item in value):
            text = "; ".join(f"{escape(name)} = {_time_text(val)}" for name, val in value)
        else:
            text = ", ".join(_time_text(item) for item in value)
    else:
        text = _time_text(value)
    return mark_safe(text)  # noqa: S308 (every part escaped above, or a <time> of ours)


def _default(arg, fallback: str) -> SafeString:
    return conditional_escape(fallback if arg is None else arg)


@register.filter
def when(value, arg=None) -> SafeString:
    """A time in the portal's one format, in a ``<time>`` element:
    ``<time datetime="2026-12-04T14:52:07Z">2026-12-04 14:52:07 UTC</time>``.
    None shows the argument (``|when:"Never"``), or "—"."""
    if value is None or value == "":
        return _default(arg, "—")
    # Built with an f-string, not format_html: every part is a formatted number or zone
    # name of ours (the cost counts in lists).
    return mark_safe(  # noqa: S308
        f'<time datetime="{timefmt.machine(value)}">{timefmt.exact(value)}</time>'
    )


@register.filter
def when_relative(value, arg=None) -> SafeString:
    """A time where people scan a list: "in 3 days", "2 hours ago", worked out here (no
    JavaScript needed), the exact time beside it: visually hidden, shown as a tooltip on
    hover and on keyboard focus (``tabindex``) by portal.css, read by screen readers.
    One line (``text-nowrap``). None shows the argument (``|when_relative:"Never"``) or
    "—"."""
    if value is None or value == "":
        return _default(arg, "—")
    return mark_safe(  # noqa: S308 (as in when: only our own text)
        f'<time class="when-relative text-nowrap" datetime="{timefmt.machine(value)}"'
        f' tabindex="0">{timefmt.relative(value)}'
        f'<span class="when-exact"> {timefmt.exact(value)}</span></time>'
    )


# The list's order without an ``o`` parameter (AccessToken.Meta.ordering): newest first.
DEFAULT_SORT = "-created"

# The sortable columns of the Access Tokens list (tokens.filters.TokenFilter.o), in the
# order of the phone layout's "Sort by" menu, with the words for each direction.
SORT_CHOICES = {
    "created": ("Created", "oldest first", "newest first"),
    "expires": ("Expires", "soonest first", "latest first"),
    "last_used": ("Last used", "longest ago first", "most recent first"),
    "owner": ("Owner", "A to Z", "Z to A"),
    "app": ("App", "A to Z", "Z to A"),
    "code": ("Code", "A to Z", "Z to A"),
}

SORT_ICONS = {"ascending": "fa-sort-up", "descending": "fa-sort-down", "none": "fa-sort"}


def _current_sort(context) -> str:
    """The column the list is sorted by first: the ``o`` parameter's (a comma-separated
    list of columns, each ``-`` for descending), or the default when there is none or it
    names an unknown column (the filter then ignores it)."""
    keys = context.get("sort", "").split(",")
    if all(key.removeprefix("-") in SORT_CHOICES for key in keys):
        return keys[0]
    return DEFAULT_SORT


def _sort_link(context, key: str) -> str:
    """The query string that sorts the list by ``key``: ascending first, then each click
    on the sorted column reverses it."""
    new = f"-{key}" if _current_sort(context) == key else key
    base = context.get("query_without_sort", "")
    return "?" + (f"{base}&" if base else "") + urlencode({"o": new})


def _sort_state(context, key: str) -> str:
    """The ``aria-sort`` value of ``key``'s column header."""
    current = _current_sort(context)
    if current == key:
        return "ascending"
    if current == f"-{key}":
        return "descending"
    return "none"


@register.simple_tag(takes_context=True)
def sort_header(context, key: str, label: str):
    """A sortable column's whole ``<th>``: ``aria-sort``, a link whose name is the column's
    label (a click sorts, or reverses the sorted column) and an arrow that shows the
    order, or a neutral sort icon on a column not sorted by."""
    state = _sort_state(context, key)
    return format_html(
        '<th scope="col" class="sortable" aria-sort="{}"><a class="sort-link" href="{}">{}'
        '<i class="fa-solid {} sort-icon" aria-hidden="true"></i></a></th>',
        state,
        _sort_link(context, key),
        label,
        SORT_ICONS[state],
    )


@register.simple_tag(takes_context=True)
def sort_options(context):
    """The ``<option>``s of the phone layout's "Sort by" menu, the current order selected."""
    current = _current_sort(context)
    options = []
    for key, (label, ascending, descending) in SORT_CHOICES.items():
        for value, words in ((key, ascending), (f"-{key}", descending)):
            selected = " selected" if value == current else ""
            options.append((value, selected, f"{label}, {words}"))
    return format_html_join("", '<option value="{}"{}>{}</option>', options)


@register.filter
def get_field_label(form, name: str) -> str:
    field = form.fields.get(name)
    return str(field.label) if field is not None and field.label else name


@register.filter
def widget_marking_errors(field) -> str:
    """A form field's widget; when it has errors, marked invalid (Bootstrap's
    ``is-invalid`` class, ``aria-invalid``) and described by them (the element
    ``<auto_id>_error`` that tokens/_filter_field.html writes)."""
    if not field.errors:
        return field.as_widget()
    css = field.field.widget.attrs.get("class", "")
    return field.as_widget(
        attrs={
            "class": f"{css} is-invalid".strip(),
            "aria-invalid": "true",
            "aria-describedby": f"{field.auto_id}_error",
        }
    )


@register.filter
def intcomma_plain(value) -> str:
    """27431 → "27,431" (counts of tokens)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
