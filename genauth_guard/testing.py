"""Test helpers' documented import path (see ``genauth_guard.dev.testing``)."""

from .dev.testing import serve_in_thread

__all__ = ["serve_in_thread"]
