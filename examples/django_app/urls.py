"""Routes of the example Django project."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("health", views.health),
    path("me", views.me),
    path("orders", views.orders),
]
