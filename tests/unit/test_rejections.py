"""The rejection catalogue: every row against the hosts' real wording (tests/fixtures/rejections/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitmirror.mirror.rejections import (
    CATALOGUE,
    UNKNOWN,
    ReasonCode,
    classify,
    classify_failure,
    with_hints,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rejections"
CASES = {path.stem: json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_hosts_wording_gets_its_reason_code(name: str) -> None:
    case = CASES[name]
    assert case["source"].startswith(("https://", "http://"))
    rejection = classify(case["status"], "\n".join(case["remote"]))
    assert rejection.code == ReasonCode(case["code"]), name
    assert rejection.hint and "\n" not in rejection.hint


def test_every_row_of_the_catalogue_is_quoted_from_a_host() -> None:
    quoted = {case["code"] for case in CASES.values()}
    assert {row.code.value for row in CATALOGUE} <= quoted
    hosts = {case["host"] for case in CASES.values() if case["code"] == "protected_branch"}
    assert {"github", "gitlab", "gitea", "bitbucket"} <= hosts


def test_a_specific_ref_status_wins_over_another_refs_side_band() -> None:
    ruleset = "\n".join(CASES["github_ruleset_gh013"]["remote"])
    assert classify("non-fast-forward", ruleset).code == ReasonCode.NON_FAST_FORWARD
    assert classify("stale info", ruleset).code == ReasonCode.STALE_INFO


def test_a_generic_status_is_explained_by_the_side_band() -> None:
    gh001 = "\n".join(CASES["github_file_too_large_gh001"]["remote"])
    assert classify("pre-receive hook declined", gh001).code == ReasonCode.FILE_TOO_LARGE
    assert classify("pre-receive hook declined", "").code == ReasonCode.HOOK_DECLINED


def test_githubs_large_file_warning_on_a_refused_push_is_not_the_cause() -> None:
    # A 50 MB file is only a warning (https://gist.github.com/michaeleiselsc/7c9a8886b730d7e125a9c220ede3fe3c)
    warning = (
        "warning: GH001: Large files detected. You may want to try Git Large File Storage - "
        "https://git-lfs.github.com.\nwarning: File 6b5... is 71.50 MB; this is larger than GitHub's "
        "recommended maximum file size of 50.00 MB"
    )
    assert classify("pre-receive hook declined", warning).code == ReasonCode.HOOK_DECLINED


def test_unrecognised_wording_is_unknown_with_a_hint() -> None:
    assert classify("the server is having a bad day", "nothing useful") == UNKNOWN
    assert UNKNOWN.hint


def test_failed_runs_are_classified_by_kind_then_wording() -> None:
    assert classify_failure("anything", "auth").code == ReasonCode.AUTH
    assert classify_failure("secret 'x' does not exist", "secret").code == ReasonCode.AUTH
    assert (
        classify_failure("repository not found at https://h/r.git", "not_found").code == ReasonCode.NOT_FOUND
    )
    refused = classify_failure(
        "the target refused the pack: unpack index-pack abnormal exit",
        "protocol",
        "fatal: pack exceeds maximum allowed size (2.00 GiB)",
    )
    assert refused.code == ReasonCode.PACK_TOO_LARGE
    assert classify_failure("timed out talking to https://h/r.git", "transient").code == ReasonCode.UNKNOWN


def test_hints_end_the_text_even_when_it_is_cut() -> None:
    text = with_hints("x" * 5000, ["do this", "do that", "do this", ""], 4000)
    assert len(text) == 4000
    assert text.endswith("Hint: do this\nHint: do that")
    assert with_hints("short", [], 4000) == "short"
