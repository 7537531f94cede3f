from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("ready/", views.ready),
    path("floor-a/", views.floor_a),
    path("floor-b/", views.floor_b),
    path("naive/", views.naive),
    path("doorbell/", views.doorbell),
    path("eduzz/", include("eduzz_webhooks.urls")),
]
