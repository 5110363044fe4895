from django.urls import path

from accounts import views

# No namespace: "login" is the name Django's LOGIN_URL and admin expect.
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("mfa/", views.MfaVerifyView.as_view(), name="mfa-verify"),
    path("mfa/setup/", views.MfaSetupView.as_view(), name="mfa-setup"),
    path("security/", views.AccountSecurityView.as_view(), name="account-security"),
    path("security/recovery-codes/", views.RecoveryCodesView.as_view(), name="recovery-codes"),
]
