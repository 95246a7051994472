"""The development authorization server's documented import path (see ``genauth_guard.dev``)."""

from .dev.server import DevAuthServer, DevClient, DevUser

__all__ = ["DevAuthServer", "DevClient", "DevUser"]
