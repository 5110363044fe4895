from django import template
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


@register.simple_tag(takes_context=True)
def sort_link(context, key: str) -> str:
    """The query string that sorts the list by ``key``, toggling the direction."""
    current = context.get("sort", "")
    new = f"-{key}" if current == key else key
    base = context.get("query_without_sort", "")
    return "?" + (f"{base}&" if base else "") + urlencode({"o": new})


@register.simple_tag(takes_context=True)
def sort_state(context, key: str) -> str:
    current = context.get("sort", "")
    if current == key:
        return "ascending"
    if current == f"-{key}":
        return "descending"
    return "none"


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
