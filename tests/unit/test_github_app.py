"""GitHub App credentials: the secret's shape, the API of each host, the JWT's claims."""

from __future__ import annotations

import pytest

from gitmirror.errors import SecretError
from gitmirror.mirror.github_app import (
    GitHubAppKey,
    api_base_for,
    app_jwt,
    is_app_secret,
    repository_name,
)
from gitmirror.mirror.urls import parse_remote
from gitmirror.scrub import scrub


def test_api_of_github_com_enterprise_server_and_the_settings_override() -> None:
    assert api_base_for(parse_remote("https://github.com/acme/app.git")) == "https://api.github.com"
    assert (
        api_base_for(parse_remote("https://ghe.example.com/acme/app.git")) == "https://ghe.example.com/api/v3"
    )
    assert (
        api_base_for(parse_remote("https://ghe.example.com:8443/acme/app"))
        == "https://ghe.example.com:8443/api/v3"
    )
    assert (
        api_base_for(parse_remote("https://github.com/a/b"), "http://127.0.0.1:1234/")
        == "http://127.0.0.1:1234"
    )
    assert repository_name(parse_remote("https://github.com/acme/app.git")) == "app"
    assert repository_name(parse_remote("https://github.com/acme/app/")) == "app"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (
            {"app_id": "x1", "installation_id": "2", "private_key": "-----BEGIN RSA PRIVATE KEY-----"},
            "app_id",
        ),
        (
            {"app_id": 1, "installation_id": True, "private_key": "-----BEGIN RSA PRIVATE KEY-----"},
            "installation_id",
        ),
        ({"app_id": 1, "installation_id": 2, "private_key": "not a key"}, "private_key"),
    ],
)
def test_malformed_app_secrets_are_refused_with_the_field(data: dict[str, object], complaint: str) -> None:
    assert is_app_secret(data)
    with pytest.raises(SecretError, match=complaint):
        GitHubAppKey.from_secret(data, "gitmirror/app")


def test_the_jwt_claims_and_the_key_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key = GitHubAppKey.from_secret({"app_id": 42, "installation_id": "7", "private_key": pem}, "n")
    assert pem not in repr(key)
    assert scrub(f"oops {pem}") == "oops ***"
    token = app_jwt(key, now=1_700_000_000)
    claims = jwt.decode(token, private.public_key(), algorithms=["RS256"], options={"verify_exp": False})
    assert claims == {"iat": 1_700_000_000 - 60, "exp": 1_700_000_000 + 540, "iss": "42"}
    assert not is_app_secret({"username": "u", "token": "t"})
