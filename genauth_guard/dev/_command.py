"""What the ``genauth-guard`` command's modules share: its name and the user's errors.

Its own module so that ``cli`` (argument parsing, ``introspect``) and
``_servers`` (``demo``, ``dev-server``) both import it and neither imports
the other at load time: ``cli`` reaches ``_servers`` only when a server
command runs.
"""

from __future__ import annotations

from typing import Final

PROG: Final = "genauth-guard"


class CommandError(Exception):
    """A problem the user can fix; its message is printed as the one error line."""
