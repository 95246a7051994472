"""The dev authorization server in a process of its own, with tokens minted up front.

``_devserver_proc.py COUNT TOKENS_FILE`` mints COUNT tokens, writes them to
TOKENS_FILE (one a line), starts the server and prints one JSON line
``{"endpoint", "client_id", "client_secret", "auth_method"}``; it serves
until its stdin closes. Used for the cache-miss rows, so that the client
being measured and the server answering it do not share one interpreter.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _support import SCOPES, DevAuthServer, introspector_options


def main() -> None:
    count, tokens_file = int(sys.argv[1]), Path(sys.argv[2])
    server = DevAuthServer()
    with server.running() as _url:
        tokens = [server.mint(scopes=SCOPES) for _ in range(count)]
        tokens_file.write_text("\n".join(tokens))
        print(json.dumps({"endpoint": server.endpoint(), **introspector_options(server)}))
        sys.stdout.flush()
        sys.stdin.read()


if __name__ == "__main__":
    main()
