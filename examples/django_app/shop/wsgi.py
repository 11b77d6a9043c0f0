"""The WSGI application: Django, with workflowkit's endpoints under /.well-known/workflow/v1/.

gunicorn shop.wsgi:application  (or python manage.py runserver --noreload)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

import workflowkit.wsgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

django_app = get_wsgi_application()
PREFIX = "/.well-known/workflow/v1"


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    # workflowkit's app reads the full path, so the request is handed over unchanged.
    if environ.get("PATH_INFO", "").startswith(PREFIX + "/"):
        return workflowkit.wsgi.app(environ, start_response)
    return django_app(environ, start_response)
