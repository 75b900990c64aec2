from __future__ import annotations

import time

import pytest

from gitmirror.errors import MESSAGE_LIMIT, ProtocolFailure, UsageError
from gitmirror.mirror.urls import PERMISSIVE, NetworkPolicy, parse_remote
from gitmirror.scrub import REMOTE_TEXT_LIMIT, one_line, register_secret, scrub


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "ssh://git@github.com/o/r.git",
        "git@github.com:o/r.git",
        "git://example.com/r",
        "ftp://example.com/r",
        "https://",
        "https://example.com/r?x=1",
        "https://exa mple.com/r",
        "https://example.com:99999/r",
        "file://remote-host/srv/r.git",
    ],
)
def test_bad_urls_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_remote(bad)


def test_userinfo_is_split_off_and_scrubbed() -> None:
    remote = parse_remote("https://user:p%40ss-canary-1@example.com:8443/group/repo.git")
    assert remote.url == "https://example.com:8443/group/repo.git"
    assert remote.password == "p@ss-canary-1"
    assert "p@ss-canary-1" not in repr(remote)
    assert scrub("failed for https://user:whatever@example.com/r") == "failed for https://***@example.com/r"
    assert "p@ss-canary-1" not in scrub("oops p@ss-canary-1 and p%40ss-canary-1")


def test_local_paths(tmp_path: object) -> None:
    remote = parse_remote("relative/dir.git")
    assert remote.is_local and remote.url.startswith("file:///")
    assert parse_remote("file:///srv/x.git").local_path == "/srv/x.git"


def test_scrub_auth_headers_and_registered_secrets() -> None:
    register_secret("canary-token-xyz-000")
    text = scrub("Authorization: Basic dXNlcjpwYXNz header; token canary-token-xyz-000 here")
    assert "dXNlcjpwYXNz" not in text
    assert "canary-token-xyz-000" not in text


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://github.com/o/r.git", True),
        ("http://github.com/o/r.git", False),
        ("https://127.0.0.1/r", False),
        ("https://localhost/r", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://10.0.0.1/r", False),
        ("https://192.168.1.1/r", False),
        ("https://[::1]/r", False),
        ("https://[::ffff:169.254.169.254]/r", False),
        ("/srv/repo.git", False),
    ],
)
def test_default_network_policy(url: str, ok: bool) -> None:
    policy = NetworkPolicy()
    remote = parse_remote(url)
    if ok:
        policy.check_url(remote, resolve=False)
    else:
        with pytest.raises(UsageError):
            policy.check_url(remote, resolve=False)


def test_permissive_policy_allows_loopback_and_http() -> None:
    PERMISSIVE.check_url(parse_remote("http://127.0.0.1:8080/r"))
    NetworkPolicy(allow_insecure_http=True, allow_loopback=True).check_url(parse_remote("http://localhost/r"))
    with pytest.raises(UsageError):
        NetworkPolicy(allow_insecure_http=True, allow_loopback=True).check_url(
            parse_remote("http://169.254.169.254/")
        )


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,  # the old userinfo pattern retried a scheme from every letter: quadratic
        "a1+" * 330_000,
        "x://" * 250_000,
        ("https://" + "u" * 100) * 10_000,
        "authorization" * 75_000,
    ],
    ids=["letters", "scheme-characters", "many-schemes", "schemes-without-at", "header-names"],
)
def test_scrubbing_is_linear_in_the_text_length(text: str) -> None:
    # A complexity guard, not a speed target: a quadratic pattern takes hours on a megabyte.
    started = time.process_time()
    assert scrub(text) == text
    assert time.process_time() - started < 5.0


def test_scrub_still_removes_userinfo_everywhere() -> None:
    text = "fatal: https://user:tok3n@host/x, git+https://a@b/c and 1http://p@h/ (x://y@z/)"
    assert scrub(text) == "fatal: https://***@host/x, git+https://***@b/c and 1http://***@h/ (x://***@z/)"


def test_one_line_removes_escapes_and_control_characters_and_caps() -> None:
    text = "\x1b[31mred\x1b[0m\r\nnext\x07 line\x1b]0;window title\x07 \x9b\x00 end" + "x" * 1000
    out = one_line(text, 60)
    assert out.startswith("red next line endxxx") and out.endswith("...") and len(out) == 60
    assert one_line("  short\ttext\n") == "short text"
    assert len(one_line("y" * 100_000)) == REMOTE_TEXT_LIMIT
    # the same escapes with ESC and BEL already replaced by "?" (dulwich's side-band errors)
    assert one_line("?[31m?]0;title??[2Jfatal: no?[0m") == "fatal: no"
    assert one_line("why?[see the docs] (a?]b?)") == "why?[see the docs] (a?]b?)"  # not escapes


def test_error_messages_are_one_scrubbed_line() -> None:
    register_secret("tok-sec-1234")
    error = ProtocolFailure("remote said:\n\x1b[2J tok-\x1b[0msec-1234 " + "z" * 5000)
    assert error.message.startswith("remote said: *** zzz") and len(error.message) <= MESSAGE_LIMIT
    assert "\n" not in error.message and "\x1b" not in error.message


@pytest.mark.parametrize("user", ["", "x", "xy", "oauth2", "x-access-token", "src-user"])
def test_base64_of_user_and_token_is_scrubbed_at_every_alignment(user: str) -> None:
    import base64

    token = "canary-B64-0e9f8d7c6b"
    register_secret(token)
    for text, tail in ((f"{user}:{token}", ""), (token, ""), (f"{user}:{token}:tail", ":tail")):
        encoded = base64.b64encode(text.encode()).decode()
        clean = scrub(f"server said: {encoded}")
        before, _, after = clean.removeprefix("server said: ").partition("***")
        assert _ == "***"
        # what is left around the mask holds at most 2 bytes of the token on either side
        assert len(before) <= len(base64.b64encode(f"{user}:".encode() if text != token else b"")) + 4
        assert len(after.rstrip("=")) <= len(base64.b64encode(tail.encode())) + 4
