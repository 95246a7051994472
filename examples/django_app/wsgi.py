"""WSGI entry point of the example Django project: Django behind GenAuthGuardWSGI.

Run it against the embedded dev authorization server:

    genauth-guard dev-server     # prints GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET
    export GENAUTH_APP_HOST=http://127.0.0.1:9000 GENAUTH_APP_ID=dev-client GENAUTH_APP_SECRET=...
    gunicorn --threads 8 examples.django_app.wsgi:application

(against GenAuth, export your application's values instead). The guard wraps
the whole Django application, so no view runs for a request without an
active token (except the paths in ``settings.GENAUTH_EXCLUDE_PATHS``).
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from genauth_guard import SyncIntrospector
from genauth_guard.wsgi import GenAuthGuardWSGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")


def create_application(introspector: SyncIntrospector | None = None) -> GenAuthGuardWSGI:
    """Django's WSGI app behind the guard; the introspector defaults to the environment's."""
    django_app = get_wsgi_application()  # loads the settings and sets Django up
    if introspector is None:
        # GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET...; a missing or wrong one
        # stops the start-up here, naming it. One per process, shared by all its threads.
        introspector = SyncIntrospector.from_env()
    return GenAuthGuardWSGI(
        django_app, introspector=introspector, exclude_paths=settings.GENAUTH_EXCLUDE_PATHS
    )


application = create_application()
