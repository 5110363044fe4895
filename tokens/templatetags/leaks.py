"""Where a token was found public, as the Overview shows it (``services.leaks``)."""

from django import template
from django.utils.html import format_html

from tokens.services.leaks import is_web_url

register = template.Library()


@register.filter
def leak_link(url: str | None) -> str:
    """An http(s) URL as a link that passes nothing on to the page it opens; any other
    reported text as text (escaped by the template)."""
    if not url:
        return "—"
    if is_web_url(url):
        return format_html(
            '<a class="text-break" href="{}" rel="noopener noreferrer nofollow">{}</a>', url, url
        )
    return url
