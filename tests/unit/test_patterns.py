"""Branch matching is linear time: RE2 for regexes, ordered substring search for `*` globs."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitmirror.mirror.planner import compile_branch_matcher, scoped_refs
from gitmirror.patterns import BranchMatcher, GlobMatcher, compile_regex
from gitmirror.values import MirrorOptions

SHA = "a" * 40
NAMES = 100_000


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (MirrorOptions(branch_regex="(a+)+$"), "(a+)+$"),
        (MirrorOptions(branch_filters=("*a*a*a*a*a*a*a*b",)), "*a*a*a*a*a*a*a*b"),
    ],
)
def test_worst_patterns_against_100000_branch_names_take_under_a_second(
    options: MirrorOptions, says: str
) -> None:
    """The issue's ReDoS patterns: a backtracking engine needs ~10 s for ONE 27-50 character name."""
    names = [f"{'a' * 50}{i}" for i in range(NAMES)]
    matcher = compile_branch_matcher(options)
    assert matcher is not None
    started = time.perf_counter()
    kept = [name for name in names if matcher.matches(name)]
    elapsed = time.perf_counter() - started
    assert kept == [], says  # no name ends in "b" or is all "a"
    assert elapsed < 1.0, f"{says}: {elapsed:.2f} s for {NAMES} names"
    # the planner filters through the same matcher
    assert scoped_refs(
        {f"refs/heads/{n}": SHA for n in names[:1000]} | {"refs/heads/" + "a" * 60: SHA}, options
    ) == ({"refs/heads/" + "a" * 60: SHA} if options.branch_regex else {})


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=main)main", "(?<=x)y", "(?!x)y", r"a++"])
def test_patterns_re2_cannot_run_in_linear_time_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"invalid branch regex \(it must be RE2 syntax"):
        MirrorOptions(branch_regex=pattern)


def test_regex_is_a_whole_name_match_on_any_character() -> None:
    matcher = BranchMatcher((), r"release/\d+|feature/.*")
    assert matcher.matches("release/12") and matcher.matches("feature/a/b") and matcher.matches("feature/")
    assert not matcher.matches("release/12x") and not matcher.matches("xrelease/1")
    assert BranchMatcher((), "é+").matches("ééé")  # UTF-8 names


@given(
    glob=st.text(alphabet="ab*/", max_size=8),
    name=st.text(alphabet="ab/", max_size=12),
)
def test_glob_matches_exactly_what_the_equivalent_regex_matches(glob: str, name: str) -> None:
    reference = re.fullmatch(".*".join(re.escape(p) for p in glob.split("*")), name, re.DOTALL)
    assert GlobMatcher([glob]).matches(name) is (reference is not None)


def test_no_filter_means_no_matcher_and_filters_or_regex_are_alternatives() -> None:
    assert compile_branch_matcher(MirrorOptions()) is None
    matcher = compile_branch_matcher(MirrorOptions(branch_filters=("main", "rel/*"), branch_regex="dev"))
    assert matcher is not None
    assert [n for n in ("main", "rel/1", "dev", "devx", "other") if matcher.matches(n)] == [
        "main",
        "rel/1",
        "dev",
    ]


def test_compile_regex_error_names_re2s_reason() -> None:
    with pytest.raises(ValueError, match="missing"):
        compile_regex("(unclosed")
