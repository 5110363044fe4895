from django import template
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

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


@register.filter
def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


@register.filter
def change_text(value) -> str:
    """An audit value as one readable line (autoescaped by the template)."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {val}" for key, val in value.items())
    if isinstance(value, list):
        if all(isinstance(item, list | tuple) and len(item) == 2 for item in value):
            return "; ".join(f"{name} = {val}" for name, val in value)
        return ", ".join(str(item) for item in value)
    return str(value)


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


@register.simple_tag(takes_context=True)
def sort_link(context, key: str) -> str:
    """The query string that sorts the list by ``key``: ascending first, then each click
    on the sorted column reverses it."""
    new = f"-{key}" if _current_sort(context) == key else key
    base = context.get("query_without_sort", "")
    return "?" + (f"{base}&" if base else "") + urlencode({"o": new})


@register.simple_tag(takes_context=True)
def sort_state(context, key: str) -> str:
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
    state = sort_state(context, key)
    return format_html(
        '<th scope="col" class="sortable" aria-sort="{}"><a class="sort-link" href="{}">{}'
        '<i class="fa-solid {} sort-icon" aria-hidden="true"></i></a></th>',
        state,
        sort_link(context, key),
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
    """A form field's widget, with Bootstrap's ``is-invalid`` class when it has errors."""
    if not field.errors:
        return field.as_widget()
    css = field.field.widget.attrs.get("class", "")
    return field.as_widget(attrs={"class": f"{css} is-invalid".strip()})


@register.filter
def intcomma_plain(value) -> str:
    """27431 → "27,431" (counts of tokens)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
