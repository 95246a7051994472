"""A minimal Django project protected by GenAuthGuardWSGI (see wsgi.py)."""
