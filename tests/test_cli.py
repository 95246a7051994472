"""The ``genauth-guard`` command, run as a user runs it: the installed console script.

The demo's printed curl commands are parsed and sent (same method, headers,
body and URL) and must get the status printed above them.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from genauth_guard import TokenInfo
from genauth_guard.dev.cli import main

from .conftest import RunningAuthServer

CLI = str(Path(sys.executable).with_name("genauth-guard"))
START_TIMEOUT = 20.0


def user_env(**extra: str) -> dict[str, str]:
    """The environment without any GENAUTH_* setting of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAUTH_")}
    env.update(extra)
    return env


class Command:
    """A running ``genauth-guard``: its stdout as it comes, stopped for sure at the end."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [CLI, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=user_env(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, marker: str, timeout: float = START_TIMEOUT) -> str:
        """Everything printed up to the line containing ``marker``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout}s: {self.output}") from None
            if line is None:
                raise AssertionError(f"exited before {marker!r}: {self.output} {self.stderr()}")
            self.output.append(line)
            if marker in line:
                return "\n".join(self.output)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send ``sig``; the exit status, the rest of stdout, and stderr."""
        self.proc.send_signal(sig)
        returncode = self.proc.wait(timeout=15)
        rest = []
        while (line := self.lines.get(timeout=5)) is not None:
            rest.append(line)
        return returncode, "\n".join(rest), self.stderr()

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read() if self.proc.poll() is not None else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def command(*args: str) -> Iterator[Command]:
    running = Command(*args)
    try:
        yield running
    finally:
        running.kill()


def curl(command_line: str) -> httpx.Response:
    """Send what ``curl`` would for the options the CLI prints (-i -s -X -H -d URL)."""
    argv = shlex.split(command_line)
    assert argv[0] == "curl", command_line
    method, url, headers, data = None, None, {}, []
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-i", "-s"):
            continue
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data.append(next(args))
        elif re.match(r"https?://", arg):
            url = arg
        else:
            raise AssertionError(f"the CLI printed a curl option this test does not know: {arg}")
    assert url is not None, command_line
    if data:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return httpx.request(
        method or ("POST" if data else "GET"),
        url,
        headers=headers,
        content="&".join(data) if data else None,
    )


def expectations(output: str) -> list[tuple[int, str]]:
    """(status, curl command) for each ``# expect NNN: ...`` line and the command after it."""
    lines = output.splitlines()
    found = []
    for i, line in enumerate(lines):
        match = re.match(r"# expect (\d{3}): ", line)
        if match:
            assert lines[i + 1].startswith("curl "), lines[i : i + 2]
            found.append((int(match[1]), lines[i + 1]))
    return found


def run_printed(line: str, token: str) -> subprocess.CompletedProcess[str]:
    """Run a printed ``VAR=value ... genauth-guard introspect TOKEN`` line."""
    words = shlex.split(line)
    env = user_env()
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    words = [token if w == "TOKEN" else w for w in words]
    return subprocess.run(words, env=env, capture_output=True, text=True, timeout=30)


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert_error_lines(stderr, 1, *fragments)


def assert_error_lines(stderr: str, count: int, *fragments: str) -> None:
    """``count`` lines on stderr, one per problem, each a ``genauth-guard ...: error:`` line."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == count, stderr
    for line in lines:
        assert re.match(r"genauth-guard( [a-z-]+)?: error: \S", line), stderr
    for fragment in fragments:
        assert fragment in stderr, (fragment, stderr)


# ---------------------------------------------------------------- demo


def test_demo_prints_curl_commands_that_get_the_printed_statuses() -> None:
    with command("demo", "--auth-port", "0", "--api-port", "0") as demo:
        output = demo.wait_for("Press Ctrl-C to stop.")
        tries = expectations(output)
        assert {status for status, _ in tries} >= {200, 201, 400, 401, 403}
        minted = None
        for status, line in tries:
            response = curl(line)
            assert response.status_code == status, (line, response.text)
            if line.endswith("/dev/tokens"):
                minted = response.json()["access_token"]
        assert minted is not None, "the demo prints how to mint a token"
        # the introspect line works with a token from the curl commands
        [introspect_line] = [line for line in output.splitlines() if " introspect TOKEN" in line]
        active = run_printed(introspect_line, minted)
        assert active.returncode == 0, active.stderr
        assert json.loads(active.stdout)["sub"] == "dave"
        inactive = run_printed(introspect_line, "not-a-real-token")
        assert inactive.returncode == 1, inactive.stderr

        returncode, rest, stderr = demo.stop(signal.SIGINT)
    assert returncode == 0
    assert "Stopped." in rest
    assert "Traceback" not in stderr


def test_demo_explains_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [CLI, "demo", "--auth-port", "0", "--api-port", port],
            capture_output=True,
            text=True,
            env=user_env(),
            timeout=30,
        )
    assert result.returncode == 2
    assert_one_line_error(result.stderr, f"127.0.0.1:{port}", "--api-port")


# ---------------------------------------------------------------- dev-server


def test_dev_server_prints_credentials_that_work() -> None:
    args = ["dev-server", "--port", "0", "--auth-method", "client_secret_basic"]
    with command(*args, "--token-lifetime", "120") as server:
        output = server.wait_for("Press Ctrl-C to stop.")
        [mint] = [line.strip() for line in output.splitlines() if line.strip().startswith("curl")]
        token = curl(mint).json()["access_token"]
        exports = [line.strip() for line in output.splitlines() if "export " in line]
        variables = [shlex.split(line)[1] for line in exports]
        assert any(v.startswith("GENAUTH_APP_SECRET=") for v in variables)
        result = run_printed(
            " ".join(shlex.quote(v) for v in variables) + f" {CLI} introspect TOKEN", token
        )
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["sub"] == "alice"
        assert answer["scopes"] == ["orders:read"]
        assert answer["exp"] - answer["iat"] == 120
        returncode, rest, stderr = server.stop(signal.SIGTERM)
    assert returncode == 0
    assert "Stopped." in rest
    assert "Traceback" not in stderr


# ---------------------------------------------------------------- introspect, as a subprocess


def test_introspect_exit_status_says_active_inactive_or_error(
    auth_server: RunningAuthServer,
) -> None:
    env = user_env(
        GENAUTH_INTROSPECTION_ENDPOINT=auth_server.endpoint(),
        GENAUTH_APP_ID="post-client",
        GENAUTH_APP_SECRET="post-secret",
    )
    token = auth_server.server.mint("alice", "orders:read")
    revoked = auth_server.server.mint("alice")
    auth_server.server.revoke(revoked)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "introspect", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=30,
        )

    active = run(token)
    assert active.returncode == 0, active.stderr
    assert json.loads(active.stdout)["sub"] == "alice"
    inactive = run(revoked)
    assert inactive.returncode == 1
    assert json.loads(inactive.stdout)["active"] is False
    rejected = run(token, GENAUTH_APP_SECRET="wrong-secret")
    assert rejected.returncode == 2
    assert rejected.stdout == ""
    assert_one_line_error(rejected.stderr, "invalid_client")
    assert "wrong-secret" not in rejected.stderr
    assert token not in rejected.stderr


def test_a_bad_option_is_one_line_and_status_2() -> None:
    result = subprocess.run(
        [CLI, "introspect", "--timeout", "soon", "tok"],
        capture_output=True,
        text=True,
        env=user_env(),
        timeout=30,
    )
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "--timeout", "'soon'", "--help")


# ---------------------------------------------------------------- introspect, in process


def run_main(
    capsys: pytest.CaptureFixture[str], *argv: str, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    status = main(list(argv), env or {})
    out, err = capsys.readouterr()
    return status, out, err


def test_introspect_prints_the_named_fields_as_json(
    auth_server: RunningAuthServer, capsys: pytest.CaptureFixture[str]
) -> None:
    token = auth_server.server.mint("alice", "b a", audience=["api", "web"], username="al")
    status, out, _ = run_main(
        capsys,
        "introspect",
        "--endpoint",
        auth_server.endpoint(),
        "--client-id",
        "post-client",
        "--client-secret",
        "post-secret",
        token,
    )
    assert status == 0
    answer = json.loads(out)
    # Every named field of TokenInfo (the library adds some: userinfo, cnf), never claims.
    assert set(answer) == {f.name for f in fields(TokenInfo)} - {"claims"}
    assert set(answer) >= {
        "active", "sub", "scopes", "client_id", "username", "token_type",
        "exp", "iat", "nbf", "aud", "iss", "jti",
    }  # fmt: skip
    assert answer["scopes"] == ["a", "b"]
    assert answer["aud"] == ["api", "web"]
    assert answer["username"] == "al"
    assert answer["iss"] == auth_server.url
    assert "post-secret" not in out


@pytest.mark.parametrize(
    ("args", "env"),
    [
        # GenAuth's names: app id, secret and host; the oauth protocol
        (
            [],
            {"GENAUTH_APP_ID": "post-client", "GENAUTH_APP_SECRET": "post-secret",
             "GENAUTH_PROTOCOL": "oauth"},
        ),
        # flags win over the environment, even over a wrong value
        (
            ["--client-secret", "post-secret", "--timeout", "3"],
            {"GENAUTH_APP_ID": "post-client", "GENAUTH_APP_SECRET": "wrong",
             "GENAUTH_TIMEOUT": "soon"},
        ),
        (
            ["--client-id", "basic-client", "--auth-method", "client_secret_basic"],
            {"GENAUTH_APP_SECRET": "basic:secret with spaces"},
        ),
        (["--client-id", "public-client", "--no-token-type-hint"], {
            "GENAUTH_INTROSPECTION_AUTH_METHOD": "none"}),
        (
            ["--app-host", "APP_HOST", "--protocol", "oauth", "--client-id", "post-client"],
            {"GENAUTH_APP_SECRET": "post-secret", "GENAUTH_TIMEOUT": "2.5"},
        ),
        # --app-host wins over an endpoint in the environment (from_env alone prefers it)
        (
            ["--app-host", "APP_HOST"],
            {"GENAUTH_INTROSPECTION_ENDPOINT": "http://127.0.0.1:1/nobody-listens",
             "GENAUTH_APP_ID": "post-client", "GENAUTH_APP_SECRET": "post-secret"},
        ),
        # --endpoint wins over the environment's app host, which is not even read
        (
            ["--endpoint", "ENDPOINT"],
            {"GENAUTH_APP_HOST": "https://x.genauth.ai/wrong/path",
             "GENAUTH_APP_ID": "post-client", "GENAUTH_APP_SECRET": "post-secret"},
        ),
    ],
    ids=["genauth env", "flags over env", "basic", "none", "app-host flag",
         "app-host flag over env endpoint", "endpoint flag over env app host"],
)  # fmt: skip
def test_introspect_takes_options_from_flags_and_environment(
    auth_server: RunningAuthServer,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
) -> None:
    token = auth_server.server.mint("alice")
    placeholders = {"APP_HOST": auth_server.url, "ENDPOINT": auth_server.endpoint()}
    args = [placeholders.get(a, a) for a in args]
    if "--app-host" not in args:
        env = {"GENAUTH_APP_HOST": auth_server.url, **env}
    status, out, err = run_main(capsys, "introspect", *args, token, env=env)
    assert (status, err) == (0, "")
    assert json.loads(out)["sub"] == "alice"


def test_introspect_reads_the_token_from_stdin(
    auth_server: RunningAuthServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = auth_server.server.mint("bob")
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    env = {
        "GENAUTH_INTROSPECTION_ENDPOINT": auth_server.endpoint(),
        "GENAUTH_APP_ID": "post-client",
        "GENAUTH_APP_SECRET": "post-secret",
    }
    status, out, _ = run_main(capsys, "introspect", "-", env=env)
    assert status == 0
    assert json.loads(out)["sub"] == "bob"


INTROSPECT = ["introspect", "t", "--client-id", "c"]
NOBODY = "http://127.0.0.1:1/x"


@pytest.mark.parametrize(
    ("argv", "env", "fragments"),
    [
        (
            INTROSPECT,
            {"GENAUTH_APP_SECRET": "s"},
            ["GENAUTH_APP_HOST (or --app-host) is not set",
             "GENAUTH_INTROSPECTION_ENDPOINT (or --endpoint)"],
        ),
        (
            ["introspect", "t", "--endpoint", NOBODY, "--client-secret", "s"],
            {},
            ["GENAUTH_APP_ID (or --client-id) is not set"],
        ),
        (
            ["introspect", "t", "--endpoint", NOBODY, "--client-id", "c"],
            {"GENAUTH_APP_SECRET": ""},  # empty counts as unset
            ["GENAUTH_APP_SECRET (or --client-secret) is not set"],
        ),
        (
            [*INTROSPECT, "--app-host", "https://x.genauth.ai/oidc"],
            {"GENAUTH_APP_SECRET": "s"},
            ["--app-host='https://x.genauth.ai/oidc' must be the bare host", "--protocol"],
        ),
        (
            [*INTROSPECT, "--endpoint", "http://example.com/i"],
            {"GENAUTH_APP_SECRET": "s"},
            ["--endpoint='http://example.com/i' uses plain http", "--allow-insecure-http"],
        ),
        (
            [*INTROSPECT, "--endpoint", NOBODY],
            {"GENAUTH_APP_SECRET": "s", "GENAUTH_TIMEOUT": "soon"},
            ["GENAUTH_TIMEOUT='soon' (or --timeout) is not a number of seconds"],
        ),
        (
            [*INTROSPECT, "--endpoint", NOBODY],
            {"GENAUTH_APP_SECRET": "s", "GENAUTH_ALLOW_INSECURE_HTTP": "maybe"},
            ["GENAUTH_ALLOW_INSECURE_HTTP='maybe' (or --allow-insecure-http) is not a yes/no"],
        ),
        (
            [*INTROSPECT, "--endpoint", NOBODY],
            {"GENAUTH_APP_SECRET": "s"},
            ["could not be reached"],
        ),
        (["dev-server", "--auth-method", "none", "--client-secret", "s"], {}, ["--client-secret"]),
    ],
    ids=["no endpoint", "no client id", "no secret", "app host path", "plain http",
         "bad env timeout", "bad env flag", "unreachable", "secret for a public client"],
)  # fmt: skip
def test_errors_are_one_line_naming_what_to_fix(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str], fragments: list[str]
) -> None:
    status, out, err = run_main(capsys, *argv, env=env)
    assert status == 2
    assert out == ""
    assert_one_line_error(err, *fragments)


def test_every_configuration_problem_is_reported_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"GENAUTH_APP_HOST": "https://x.genauth.ai/oidc", "GENAUTH_PROTOCOL": "saml"}
    status, out, err = run_main(capsys, "introspect", "t", env=env)
    assert (status, out) == (2, "")
    assert_error_lines(
        err,
        4,
        "GENAUTH_APP_ID (or --client-id) is not set",
        "GENAUTH_APP_SECRET (or --client-secret) is not set",
        "GENAUTH_PROTOCOL='saml' (or --protocol) is not a GenAuth protocol",
        "GENAUTH_APP_HOST='https://x.genauth.ai/oidc' (or --app-host) must be the bare host",
    )


def test_a_misspelled_variable_is_pointed_out(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"GENAUTH_APP_ID": "c", "GENAUTH_APP_SECERT": "s", "GENAUTH_APP_HOST": "https://x.ai"}
    status, _, err = run_main(capsys, "introspect", "t", env=env)
    assert status == 2
    warning, error = err.strip().splitlines()
    assert warning == (
        "genauth-guard introspect: warning: GENAUTH_APP_SECERT is not a setting "
        "genauth-guard reads; GENAUTH_APP_SECRET?"
    )
    assert error.startswith("genauth-guard introspect: error: GENAUTH_APP_SECRET (or --client-")


def test_allow_insecure_http_flag_wins_over_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 192.0.2.1 (TEST-NET-1) is not loopback and answers nobody: the request is
    # allowed (no plain-http refusal) and then fails to connect.
    argv = [*INTROSPECT, "--endpoint", "http://192.0.2.1:9/x", "--timeout", "0.3"]
    env = {"GENAUTH_APP_SECRET": "s", "GENAUTH_ALLOW_INSECURE_HTTP": "no"}
    status, _, refused = run_main(capsys, *argv, env=env)
    assert status == 2
    assert_one_line_error(refused, "uses plain http")
    status, _, err = run_main(capsys, *argv, "--allow-insecure-http", env=env)
    assert status == 2
    assert_one_line_error(err, "http://192.0.2.1:9/x")
    assert "plain http" not in err


def test_the_readme_shows_the_errors_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "dev-tools.md"
    readme = docs.read_text(encoding="utf-8")
    [block] = re.findall(r"```text\n\$ (GENAUTH_APP_SECRET=.*?)\n```", readme, flags=re.DOTALL)
    command, *shown = block.splitlines()
    assert command == 'GENAUTH_APP_SECRET=... genauth-guard introspect "$TOKEN"'
    status, _, err = run_main(capsys, "introspect", "TOKEN", env={"GENAUTH_APP_SECRET": "..."})
    assert status == 2
    assert err.splitlines() == shown


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("demo", "dev-server", "introspect"):
        assert re.search(rf"^  {name} ", out, re.MULTILINE), out
