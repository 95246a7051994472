"""docs/local-flow.md says what runs: its config is the example file, its script passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .test_cli import command, user_env

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "local-flow.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "dev-users.toml"


def block(language: str, containing: str) -> str:
    [found] = [
        b for b in re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL) if containing in b
    ]
    return found


def test_the_doc_shows_the_example_file_as_it_is() -> None:
    assert block("toml", "[[clients]]") == EXAMPLE.read_text(encoding="utf-8")


def test_the_docs_script_runs_the_whole_flow() -> None:
    script = block("python", "APP_HOST =")
    args = ["dev-server", "--port", "0", "--config", str(EXAMPLE), "--auto-approve"]
    with command(*args) as server:
        banner = server.wait_for("Press Ctrl-C to stop.")
        found = re.search(r"app_host \(issuer\)\s+(\S+)", banner)
        assert found is not None
        script = script.replace('"http://127.0.0.1:9000"', repr(found.group(1)), 1)
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=user_env(),
        )
        server.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "signed in as bob Bob Builder bob@example.com"
    assert lines[1].startswith("ID token for my-web-app nonce ")
    assert lines[2:] == [
        "introspection: True",
        "old refresh token: {'active': False}",
        "after revocation: {'active': False}",
        "logout goes to http://127.0.0.1:3000/",
    ]
