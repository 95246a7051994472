"""Settings of the example Django project: no database, no apps, one view module.

The guard's own settings come from the environment (GENAUTH_*), read here so
that ``wsgi.py`` finds them where Django code looks: ``django.conf.settings``.
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

GENAUTH_INTROSPECTION_ENDPOINT = os.environ.get(
    "GENAUTH_INTROSPECTION_ENDPOINT", "http://127.0.0.1:9000/oidc/token/introspection"
)
GENAUTH_CLIENT_ID = os.environ.get("GENAUTH_CLIENT_ID", "dev-client")
GENAUTH_CLIENT_SECRET = os.environ.get("GENAUTH_CLIENT_SECRET", "dev-secret")
GENAUTH_EXCLUDE_PATHS = ["/health"]
