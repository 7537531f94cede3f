from __future__ import annotations

from django.urls import path

from .views import WebhookView

app_name = "eduzz_webhooks"

urlpatterns = [
    path("", WebhookView.as_view(), name="webhook"),
]
