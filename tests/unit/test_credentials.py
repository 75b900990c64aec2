from __future__ import annotations

import datetime as dt

import pytest

from gitmirror.errors import UsageError
from gitmirror.mirror.credentials import (
    CodeCommitIAM,
    codecommit_region,
    from_env_token,
    github_token,
    gitlab_token,
    sign_codecommit_password,
)
from gitmirror.mirror.urls import parse_remote
from gitmirror.scrub import scrub


def test_codecommit_password_matches_git_remote_codecommit_vector() -> None:
    password = sign_codecommit_password(
        "access",
        "secret",
        "us-west-2",
        "git-codecommit.us-west-2.amazonaws.com",
        "/v1/repos/test_repo",
        dt.datetime(2017, 12, 24, 11, 53, 20, tzinfo=dt.UTC),
    )
    assert password == "20171224T115320Zb6df2d758a8023b2f000a546417007b65494f3ce8ad0300fd45fcfa173f1959a"


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://git-codecommit.us-east-1.amazonaws.com/v1/repos/r", "us-east-1"),
        ("https://git-codecommit.cn-north-1.amazonaws.com.cn/v1/repos/r", "cn-north-1"),
        ("https://git-codecommit-fips.us-gov-west-1.amazonaws.com/v1/repos/r", "us-gov-west-1"),
        ("https://github.com/o/r.git", None),
        ("https://git-codecommit.us-east-1.amazonaws.com.evil.example/v1/repos/r", None),
    ],
)
def test_codecommit_region(url: str, region: str | None) -> None:
    assert codecommit_region(parse_remote(url)) == region


class _FakeCreds:
    def __init__(self, token: str | None) -> None:
        self.access_key = "AKIDEXAMPLE"
        self.secret_key = "canary-secret-key-123"
        self.token = token

    def get_frozen_credentials(self) -> _FakeCreds:
        return self


class _Session:
    def __init__(self, token: str | None) -> None:
        self.token = token

    def get_credentials(self) -> _FakeCreds:
        return _FakeCreds(self.token)


def test_codecommit_iam_uses_session_token_in_username_and_signs_fresh() -> None:
    remote = parse_remote("https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/mirror")
    creds = CodeCommitIAM(_Session("SESSIONTOKEN")).credentials_for(remote)
    assert creds is not None
    assert creds.username == "AKIDEXAMPLE%SESSIONTOKEN"
    assert len(creds.password) == len("20171224T115320Z") + 64
    assert creds.password[15] == "Z"
    no_token = CodeCommitIAM(_Session(None)).credentials_for(remote)
    assert no_token is not None and no_token.username == "AKIDEXAMPLE"
    # the secret key and the signed password never survive scrubbing
    assert "canary-secret-key-123" not in scrub("x canary-secret-key-123 y")
    assert creds.password not in scrub(f"password={creds.password}")


def test_codecommit_iam_refuses_other_hosts() -> None:
    with pytest.raises(UsageError):
        CodeCommitIAM(_Session(None)).credentials_for(parse_remote("https://github.com/o/r"))


def test_token_usernames() -> None:
    remote = parse_remote("https://example.com/r.git")
    assert github_token("t0ken-abc").credentials_for(remote).username == "x-access-token"  # type: ignore[union-attr]
    assert gitlab_token("t0ken-abc").credentials_for(remote).username == "oauth2"  # type: ignore[union-attr]
    gl = from_env_token(parse_remote("https://gitlab.example.com/g/r.git"), "tok-123456", None)
    assert gl.credentials_for(remote).username == "oauth2"  # type: ignore[union-attr]
    explicit = from_env_token(remote, "tok-123456", "alice")
    assert explicit.credentials_for(remote).username == "alice"  # type: ignore[union-attr]
    embedded = parse_remote("https://bob:s3cr3t-pw@example.com/r.git")
    assert embedded.url == "https://example.com/r.git"
    got = from_env_token(embedded, None, None).credentials_for(embedded)
    assert got is not None and (got.username, got.password) == ("bob", "s3cr3t-pw")
    assert from_env_token(remote, None, None).credentials_for(remote) is None


def test_repr_never_shows_password() -> None:
    creds = github_token("ghp_canaryTOKEN0000")
    assert "ghp_canaryTOKEN0000" not in repr(creds)
    assert "ghp_canaryTOKEN0000" not in repr(creds.credentials_for(parse_remote("https://x.example/r")))
