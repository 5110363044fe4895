from django.urls import path
from oauth2_provider.views import IntrospectTokenView

urlpatterns = [path("o/introspect/", IntrospectTokenView.as_view())]
