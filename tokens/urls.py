from django.urls import path

from tokens.views import bulk, create, detail, edit, export, listing, notifications, revoke, rotate

app_name = "tokens"

urlpatterns = [
    path("", listing.TokenListView.as_view(), name="list"),
    path("export.csv", export.TokenExportView.as_view(), name="export"),
    path("notifications/", notifications.NotificationSettingsView.as_view(), name="notifications"),
    path("new/", create.TokenCreateView.as_view(), name="create"),
    path("<uuid:public_id>/", detail.TokenDetailView.as_view(), name="detail"),
    path("<uuid:public_id>/edit/", edit.TokenEditView.as_view(), name="edit"),
    path("<uuid:public_id>/revoke/", revoke.TokenRevokeView.as_view(), name="revoke"),
    path("<uuid:public_id>/rotate/", rotate.TokenRotateView.as_view(), name="rotate"),
    path("<uuid:public_id>/history/", detail.TokenHistoryView.as_view(), name="history"),
    path("revoke-selected/", bulk.BulkRevokeView.as_view(), name="bulk_revoke"),
    path("apps/<int:app_id>/revoke-all/", bulk.AppRevokeView.as_view(), name="app_revoke"),
    path("jobs/", bulk.JobListView.as_view(), name="jobs"),
    path("jobs/<uuid:public_id>/", bulk.JobDetailView.as_view(), name="job"),
    path("jobs/<uuid:public_id>/resume/", bulk.JobResumeView.as_view(), name="job_resume"),
]
