"""Users and clients of the local GenAuth from code, a TOML or JSON file, and the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from genauth import AuthenticationClient

from genauth_guard.dev.cli import main
from genauth_guard.dev.server import DevAuthServer, DevClient, DevUser

from .test_cli import command

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dev-users.toml"


def test_the_example_file_registers_its_clients_and_users() -> None:
    server = DevAuthServer.from_config(EXAMPLE)
    web, spa = server.clients.values()
    assert web.client_id == "my-web-app"
    assert web.redirect_uris == ("http://127.0.0.1:3000/callback",)
    assert web.post_logout_redirect_uris == ("http://127.0.0.1:3000/",)
    assert spa.auth_method == "none" and spa.client_secret is None
    assert list(server.users) == ["alice", "bob"]
    assert server.users["alice"].phone_number_verified is True
    assert server.auto_approve is False
    assert DevAuthServer.from_config(EXAMPLE, auto_approve="bob").auto_approve == "bob"


def test_dev_server_config_runs_the_sdk_login() -> None:
    """The command with the example file and --auto-approve: the SDK signs in as bob."""
    args = ["dev-server", "--port", "0", "--config", str(EXAMPLE), "--auto-approve"]
    with command(*args, "--token-lifetime", "120") as server:
        banner = server.wait_for("Press Ctrl-C to stop.")
        url = re.search(r"app_host \(issuer\)\s+(\S+)", banner)
        assert url is not None, banner
        app_host = url.group(1)
        assert "redirect_uri             http://127.0.0.1:3000/callback" in banner
        assert re.search(r"bob\s+Bob Builder <bob@example.com>", banner)
        assert "auto-approved" in banner
        sdk = AuthenticationClient(
            app_id="my-web-app",
            app_host=app_host,
            app_secret="dev-secret-change-me",
            redirect_uri="http://127.0.0.1:3000/callback",
        )
        verifier = sdk.generate_code_challenge()
        authorize = sdk.build_authorize_url(
            scope="openid profile email",
            code_challenge=sdk.generate_code_challenge_digest(verifier),
            code_challenge_method="S256",
        )
        answer = httpx.get(authorize + "&" + urlencode({"login_hint": "bob"}))
        assert answer.status_code == 303
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        tokens = sdk.get_access_token_by_code(code, verifier)
        assert tokens["expires_in"] == 120  # the flag wins over the file's 3600
        assert sdk.get_user_info_by_access_token(tokens["access_token"])["name"] == "Bob Builder"
        returncode, _, stderr = server.stop()
    assert returncode == 0, stderr


def test_a_json_file_works_the_same(tmp_path: Path) -> None:
    path = tmp_path / "dev-users.json"
    path.write_text(
        json.dumps(
            {
                "auto_approve": True,
                "clients": [{"client_id": "c", "client_secret": "s", "redirect_uris": ["x:/cb"]}],
                "users": [{"sub": "zoe", "email": "zoe@example.com"}],
            }
        )
    )
    server = DevAuthServer.from_config(path)
    assert server.client.redirect_uris == ("x:/cb",)  # a native app's own scheme
    assert server.user_claims("zoe")["email"] == "zoe@example.com"
    assert server.auto_approve is True


def test_every_problem_in_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dev-users.toml"
    path.write_text(
        "token_lifetim = 5\n"
        '[[clients]]\nclient_id = "c"\nclient_secret = "s"\nredirect_uri = "http://a/cb"\n'
        'auth_method = "tls_client_auth"\n'
        '[[users]]\nname = "nobody"\nemail_verified = "yes"\n'
    )
    assert main(["dev-server", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert all(line.startswith(f"genauth-guard dev-server: error: {path}") for line in lines)
    text = "\n".join(lines)
    assert "unknown key 'token_lifetim'" in text
    assert "clients #1: unknown key 'redirect_uri'; known keys:" in text
    assert "redirect_uris" in text
    assert "clients #1: auth_method must be one of" in text
    assert "users #1: email_verified must be true or false, got 'yes'" in text
    assert "users #1: sub is required" in text
    assert len(lines) == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[clients]\n", "not valid TOML"),
        ('auto_approve = "mallory"\n', "auto_approve='mallory' must be True, False or a user's"),
        (
            '[[clients]]\nclient_id = "c"\nclient_secret = "s"\nredirect_uris = ["/cb"]\n',
            "'/cb' is not an absolute URI",
        ),
        ('[[clients]]\nclient_id = "c"\n', "client 'c' needs a client_secret"),
    ],
)
def test_bad_files_are_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "dev-users.toml"
    path.write_text(content)
    assert main(["dev-server", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert str(path) in err
    with pytest.raises(ValueError, match=re.escape(message)):
        DevAuthServer.from_config(path)


def test_client_flags_and_a_file_with_clients_conflict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-server", "--config", str(EXAMPLE), "--client-id", "x"]) == 2
    assert "drop --client-id or its [[clients]]" in capsys.readouterr().err
    assert main(["dev-server", "--config", str(tmp_missing := EXAMPLE.with_name("nope"))]) == 2
    assert f"cannot read --config {tmp_missing}" in capsys.readouterr().err


def test_dev_client_keeps_its_old_constructor_and_checks_uris() -> None:
    old = DevClient("c", "s", "client_secret_basic")
    assert (old.redirect_uris, old.post_logout_redirect_uris) == ((), ())
    new = DevClient("c", "s", redirect_uris=["http://127.0.0.1/cb"])
    assert new.redirect_uris == ("http://127.0.0.1/cb",)
    with pytest.raises(ValueError, match="fragment"):
        DevClient("c", "s", redirect_uris=("http://127.0.0.1/cb#x",))
    with pytest.raises(ValueError, match="absolute"):
        DevClient("c", "s", post_logout_redirect_uris=("/home",))
    with pytest.raises(ValueError, match="sub"):
        DevUser("")
    with pytest.raises(ValueError, match="twice"):
        DevAuthServer([old, old])
