from django.urls import path

from tokens import views

app_name = "tokens"

urlpatterns = [
    path("", views.TokenListView.as_view(), name="list"),
    path("new/", views.TokenCreateView.as_view(), name="create"),
    path("<uuid:public_id>/", views.TokenDetailView.as_view(), name="detail"),
    path("<uuid:public_id>/edit/", views.TokenEditView.as_view(), name="edit"),
    path("<uuid:public_id>/revoke/", views.TokenRevokeView.as_view(), name="revoke"),
    path("<uuid:public_id>/history/", views.TokenHistoryView.as_view(), name="history"),
]
