"""WSGI entry point of the example Django project: Django behind GenAuthGuardWSGI.

    GENAUTH_INTROSPECTION_ENDPOINT=... GENAUTH_CLIENT_ID=... GENAUTH_CLIENT_SECRET=... \\
        gunicorn --threads 8 examples.django_app.wsgi:application

The guard wraps the whole Django application, so no view runs for a request
without an active token (except the paths in GENAUTH_EXCLUDE_PATHS).
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from genauth_guard import SyncIntrospector
from genauth_guard.wsgi import GenAuthGuardWSGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")


def create_application(introspector: SyncIntrospector | None = None) -> GenAuthGuardWSGI:
    """Django's WSGI app behind the guard; the introspector defaults to the settings'."""
    django_app = get_wsgi_application()  # loads the settings and sets Django up
    if introspector is None:
        # One per process, shared by all its threads (gunicorn --threads).
        introspector = SyncIntrospector(
            settings.GENAUTH_INTROSPECTION_ENDPOINT,
            client_id=settings.GENAUTH_CLIENT_ID,
            client_secret=settings.GENAUTH_CLIENT_SECRET,
        )
    return GenAuthGuardWSGI(
        django_app, introspector=introspector, exclude_paths=settings.GENAUTH_EXCLUDE_PATHS
    )


application = create_application()
