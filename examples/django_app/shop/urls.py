"""URL routes of the example."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("orders/<str:order_id>", views.place_order),
    path("orders/<str:order_id>/approve", views.approve_order),
    path("runs/<str:run_id>", views.run_status),
]
