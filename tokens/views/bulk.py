"""Revoking many tokens at once: the list's "Revoke selected" (ticked rows, or every
token of the current filter), an app's "Revoke all tokens", and the Jobs pages that
follow them (``tokens.jobs`` runs them)."""

import uuid
from datetime import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.http import urlencode
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.generic import ListView

from tokens import jobs, services
from tokens.conf import setting
from tokens.filters import token_filter, without_pasted_secret
from tokens.forms import AppRevokeForm, RevokeForm
from tokens.models import App, Job, JobKind
from tokens.views.base import PortalPermissionMixin, remote_addr

# The list's own parameters that select no tokens.
_NOT_FILTERS = ("page", "per_page", "o")


def describe_filter(filterset) -> str:
    """The filter in words, as the confirm page and the job's record name it:
    'Search “acme”; App: Acme Checkout, Billing; Status: Active'."""
    if not filterset.is_bound or not filterset.form.is_valid():
        return "every token"
    parts = []
    for name, field in filterset.form.fields.items():
        value = filterset.form.cleaned_data.get(name)
        if name == "o" or value in (None, "", [], ()) or (hasattr(value, "exists") and not value):
            continue
        if name == "q":
            parts.append(f"Search “{value}”")
        elif isinstance(value, slice):
            start = value.start.date() if isinstance(value.start, datetime) else value.start
            stop = value.stop.date() if isinstance(value.stop, datetime) else value.stop
            span = " to ".join(str(end) for end in (start, stop) if end)
            parts.append(f"{field.label}: {'from ' if not stop else ''}{span}")
        elif hasattr(value, "__iter__") and not isinstance(value, str):
            parts.append(f"{field.label}: {', '.join(str(item) for item in value)}")
        else:
            label = dict(getattr(field, "choices", ())).get(value, value)
            parts.append(f"{field.label}: {label}")
    return "; ".join(parts) or "every token"


def _selected_ids(values) -> list[uuid.UUID]:
    ids = []
    for value in values[:1000]:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return ids


def _cutoff(value: str | None):
    """The moment the confirm page counted the tokens (never in the future)."""
    now = timezone.now()
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return now
    if timezone.is_naive(moment):
        return now
    return min(moment, now)


@method_decorator(never_cache, name="dispatch")
class BulkRevokeView(PortalPermissionMixin, View):
    """``/tokens/revoke-selected/``: the confirm page of the list's **Revoke selected**
    (GET: what will be revoked and what skipped, and why), then **CONFIRM** (POST)."""

    permission_required = "tokens.revoke_accesstoken"
    template_name = "tokens/token_bulk_revoke.html"

    def selection(self, data):
        """(query string the job keeps, its description, the queryset, the list's URL);
        the list's filter is read as the list reads it (a pasted secret masked)."""
        filters = QueryDict(mutable=True)
        for key, values in QueryDict(data.get("filter", "")).lists():
            if key not in _NOT_FILTERS:
                filters.setlist(key, values)
        filters = without_pasted_secret(filters)
        self.filters = filters.urlencode()
        list_url = reverse("tokens:list") + (f"?{filters.urlencode()}" if filters else "")
        if data.get("all") == "1":
            filterset = token_filter(filters, request=self.request)
            if filterset.is_bound and not filterset.form.is_valid():
                return None, "", None, list_url
            return filters.urlencode(), describe_filter(filterset), filterset.qs, list_url
        ids = _selected_ids(data.getlist("token"))
        if not ids:
            return None, "", None, list_url
        query = urlencode([("token", str(public_id)) for public_id in ids])
        n = len(ids)
        description = f"{n} token{'s' if n != 1 else ''} ticked on the list"
        return query, description, jobs.selection(query), list_url

    def render_page(self, data, form, status=200):
        query, description, tokens, list_url = self.selection(data)
        if tokens is None:
            messages.warning(
                self.request,
                "Nothing was selected, or the filter could not be read: tick the tokens to "
                "revoke, or Select all matching.",
            )
            return redirect(list_url)
        cutoff = _cutoff(data.get("cutoff")) if self.request.method == "POST" else timezone.now()
        will, skipped = services.count_batch_outcome(
            tokens.filter(created_at__lte=cutoff), services.RevokeChannel.PORTAL
        )
        context = {
            "form": form,
            "description": description,
            "will": will,
            "skipped": skipped,
            "skipped_total": sum(skipped.values()),
            "hidden": [
                ("filter", self.filters),
                ("cutoff", cutoff.isoformat()),
                *([("all", "1")] if data.get("all") == "1" else []),
                *[("token", str(i)) for i in _selected_ids(data.getlist("token"))],
            ],
            "list_url": list_url,
            "inline_limit": setting("BULK_REVOKE_INLINE_LIMIT"),
        }
        return render(self.request, self.template_name, context, status=status)

    def get(self, request):
        return self.render_page(request.GET, RevokeForm())

    def post(self, request):
        form = RevokeForm(request.POST)
        query, description, tokens, list_url = self.selection(request.POST)
        if tokens is None or not form.is_valid():
            return self.render_page(request.POST, form, status=400)
        cutoff = _cutoff(request.POST.get("cutoff"))
        total = tokens.filter(created_at__lte=cutoff).count()
        if not total:
            messages.info(request, "No token matches any more; nothing was revoked.")
            return redirect(list_url)
        job = jobs.start(
            kind=JobKind.BULK_REVOKE,
            actor=request.user,
            description=description,
            total=total,
            query=query,
            reason=form.cleaned_data["reason"],
            cutoff=cutoff,
            remote_addr=remote_addr(request),
        )
        return redirect(job)


@method_decorator(never_cache, name="dispatch")
class AppRevokeView(PortalPermissionMixin, View):
    """``/tokens/apps/<id>/revoke-all/``: every token of an app whose client secret
    leaked, OAuth-issued ones too (an incident action), optionally with a new secret."""

    permission_required = "tokens.revoke_accesstoken"
    template_name = "tokens/app_revoke.html"

    def render_page(self, app, form, status=200):
        cutoff = timezone.now()
        will, skipped = services.count_batch_outcome(
            app.tokens.filter(created_at__lte=cutoff), services.RevokeChannel.INCIDENT
        )
        context = {
            "app": app,
            "form": form,
            "will": will,
            "skipped": skipped,
            "skipped_total": sum(skipped.values()),
            "can_regenerate": self.request.user.has_perm("tokens.change_app"),
            "list_url": reverse("tokens:list") + f"?app={app.pk}",
        }
        return render(self.request, self.template_name, context, status=status)

    def get(self, request, app_id):
        app = get_object_or_404(App, pk=app_id)
        return self.render_page(app, AppRevokeForm())

    def post(self, request, app_id):
        app = get_object_or_404(App, pk=app_id)
        form = AppRevokeForm(request.POST)
        if not form.is_valid():
            return self.render_page(app, form, status=400)
        regenerate = form.cleaned_data["regenerate_secret"]
        if regenerate and not request.user.has_perm("tokens.change_app"):
            raise PermissionDenied
        job, secret = jobs.start_app_revoke(
            app=app,
            actor=request.user,
            reason=form.cleaned_data["reason"],
            regenerate_secret=regenerate,
            remote_addr=remote_addr(request),
        )
        if secret is None:
            return redirect(job)
        # The new client secret, shown once: this answer is not stored anywhere.
        return render(
            request,
            "tokens/app_secret_regenerated.html",
            {"app": app, "job": job, "client_secret": secret},
        )


@method_decorator(never_cache, name="dispatch")
class JobListView(PortalPermissionMixin, ListView):
    """``/tokens/jobs/``: every job, newest first: who, what, when, progress, result."""

    permission_required = "tokens.view_accesstoken"
    template_name = "tokens/job_list.html"
    context_object_name = "jobs"
    paginate_by = 25

    def get_queryset(self):
        return Job.objects.select_related("app")


@method_decorator(never_cache, name="dispatch")
class JobDetailView(PortalPermissionMixin, View):
    """``/tokens/jobs/<id>/``: a job's progress (refreshing itself while it runs; live
    with JavaScript, through ``?format=json``) and, once done, its summary."""

    permission_required = "tokens.view_accesstoken"

    def get(self, request, public_id):
        job = get_object_or_404(Job, public_id=public_id)
        if request.GET.get("format") == "json":
            return JsonResponse(job_state(job))
        revoked_url = reverse("tokens:list") + "?" + urlencode({"job": str(job.public_id)})
        return render(
            request,
            "tokens/job_detail.html",
            {"job": job, "revoked_url": revoked_url},
        )


def job_state(job: Job) -> dict:
    return {
        "status": job.status,
        "status_label": job.get_status_display(),
        "finished": job.is_finished,
        "total": job.total,
        "processed": job.processed,
        "revoked": job.revoked,
        "skipped": job.skipped_total,
        "percent": job.percent,
        "error": job.error,
    }


@method_decorator(never_cache, name="dispatch")
class JobResumeView(PortalPermissionMixin, View):
    """POST ``/tokens/jobs/<id>/resume/``: queue a failed job again."""

    permission_required = "tokens.revoke_accesstoken"

    def post(self, request, public_id):
        job = get_object_or_404(Job, public_id=public_id)
        with transaction.atomic():
            resumed = jobs.resume(job)
        if resumed:
            messages.success(request, "The job is queued again; it goes on where it stopped.")
        else:
            messages.info(request, "Only a failed job can be resumed.")
        return redirect(job)
