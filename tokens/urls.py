from django.urls import path

from tokens.views import create, detail, edit, export, listing, notifications, revoke

app_name = "tokens"

urlpatterns = [
    path("", listing.TokenListView.as_view(), name="list"),
    path("export.csv", export.TokenExportView.as_view(), name="export"),
    path("notifications/", notifications.NotificationSettingsView.as_view(), name="notifications"),
    path("new/", create.TokenCreateView.as_view(), name="create"),
    path("<uuid:public_id>/", detail.TokenDetailView.as_view(), name="detail"),
    path("<uuid:public_id>/edit/", edit.TokenEditView.as_view(), name="edit"),
    path("<uuid:public_id>/revoke/", revoke.TokenRevokeView.as_view(), name="revoke"),
    path("<uuid:public_id>/history/", detail.TokenHistoryView.as_view(), name="history"),
]
