"""Settings of the example Django project: no database, no apps, one view module.

The guard's connection settings are not here: ``wsgi.py`` builds the
introspector with ``SyncIntrospector.from_env()``, which reads the GENAUTH_*
environment variables (GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET...)
and checks them, as every other example and ``genauth-guard introspect`` do.
Only which paths stay open is a Django setting.
"""

from __future__ import annotations

import os
import secrets

# Signing is unused here (no sessions); a real project reads its key from the environment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "examples.django_app.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

GENAUTH_EXCLUDE_PATHS = ["/health"]  # requests the guard lets through without a token
