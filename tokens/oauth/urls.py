from django.urls import path

from tokens.oauth import views

app_name = "oauth"

urlpatterns = [
    path("token/", views.token, name="token"),
    path("revoke/", views.revoke, name="revoke"),
    path("introspect/", views.introspect, name="introspect"),
]
