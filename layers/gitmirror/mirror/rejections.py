"""Why a target refused a push, and what the operator can do about it: the message catalogue.

Hosts explain refusals in two places: the ref's status reason (`ng refs/heads/main <reason>`) and the
server's `remote:` side-band lines. GitHub puts the real cause of a ruleset or secret-scanning refusal
(`GH013`, `GH009`) and of a pre-receive hook's refusal in the side-band, behind a generic ref status
("push declined due to repository rule violations", "pre-receive hook declined"). `classify` reads the
ref's reason for a specific wording first, then the side-band, then the generic wordings.

The wordings are the hosts' own; tests/fixtures/rejections/ holds each one with its source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    WORKFLOW_SCOPE = "workflow_scope"
    PROTECTED_BRANCH = "protected_branch"
    RULESET = "ruleset"
    PUSH_PROTECTION = "push_protection"
    FILE_TOO_LARGE = "file_too_large"
    PACK_TOO_LARGE = "pack_too_large"
    HIDDEN_REF = "hidden_ref"
    NON_FAST_FORWARD = "non_fast_forward"
    STALE_INFO = "stale_info"
    HOOK_DECLINED = "hook_declined"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Rejection:
    """A refusal's class and the one line that tells the operator what to do."""

    code: ReasonCode
    hint: str


@dataclass(frozen=True)
class _Row:
    code: ReasonCode
    pattern: re.Pattern[str]
    hint: str
    # a wording that names no cause by itself: the side-band lines are asked first
    generic: bool = False


def _row(code: ReasonCode, pattern: str, hint: str, *, generic: bool = False) -> _Row:
    return _Row(code, re.compile(pattern, re.IGNORECASE), hint, generic)


_RULESET_HINT = (
    "a ruleset on the target refuses this update: exempt the mirror's account or App from the ruleset "
    "(bypass list), or narrow the mirror's branch filters"
)
# Ordered: the first row that matches wins, so the more specific wordings come first (GitHub's secret
# scanning refusal is a GH013 that says "PUSH PROTECTION"; GitLab's force-push refusal names a protected
# branch, not a fast-forward).
CATALOGUE: tuple[_Row, ...] = (
    _row(
        ReasonCode.WORKFLOW_SCOPE,
        r"refusing to allow an? (?:Personal Access Token|OAuth App|GitHub App|integration)\b.*\bworkflow",
        "the target's credentials may not change .github/workflows: give the token the `workflow` scope "
        "(classic PAT) or Workflows: read and write (fine-grained PAT, GitHub App)",
    ),
    _row(
        ReasonCode.PUSH_PROTECTION,
        r"\bGH009\b|GITHUB PUSH PROTECTION|Push cannot contain secrets|Secrets detected",
        "GitHub secret scanning push protection found a secret in the pushed commits: remove it from the "
        "source's history, or allow it with the unblock URL in the target's message",
    ),
    _row(
        ReasonCode.FILE_TOO_LARGE,
        r"error: GH001\b|exceeds GitHub's file size limit|larger than the allowed size|file size limit",
        "a file exceeds the target's size limit (GitHub: 100 MiB): move it to Git LFS or remove it from "
        "the source's history",
    ),
    _row(ReasonCode.RULESET, r"\bGH013\b", _RULESET_HINT),
    _row(
        ReasonCode.PROTECTED_BRANCH,
        r"\bGH006\b|protected branch|can only be modified through pull requests"
        r"|Permission denied to update branch|branch restrictions? prevented",
        "the branch is protected on the target: allow the mirror's account to push (and force-push) "
        "there, or unprotect the branch on the mirror",
    ),
    _row(
        ReasonCode.PACK_TOO_LARGE,
        r"pack exceeds maximum allowed size|object too large|pack.{0,40}too large|maxInputSize",
        "the push is larger than the target accepts in one pack (GitHub: 2 GiB): push the history to "
        "the target in smaller steps once, then let the mirror continue",
    ),
    _row(
        ReasonCode.HIDDEN_REF,
        r"deny updating a hidden ref",
        "the target hides this ref namespace from pushes (transfer.hideRefs, e.g. refs/pull): leave it "
        "out of the mirror with branch filters",
    ),
    _row(
        ReasonCode.STALE_INFO,
        r"stale info",
        "the ref changed on the target while the run was in progress: the next run mirrors it again",
    ),
    _row(
        ReasonCode.NON_FAST_FORWARD,
        r"non-fast-forward|fetch first|not a fast.forward|denyNonFastForwards",
        "the target refuses non-fast-forward updates: allow force pushes for the mirror's account, or "
        "set keep_divergent_refs to skip diverged refs",
    ),
    _row(
        ReasonCode.AUTH,
        r"HTTP 401|HTTP 403|authentication failed|access denied|permission to .* denied"
        r"|not authorized|Invalid username or password|Bad credentials",
        "the credentials were refused or lack write access: check the secret's token (expiry, scopes: "
        "Contents read and write) and that its account can push to the repository",
    ),
    _row(
        ReasonCode.NOT_FOUND,
        r"repository not found|not a git repository|HTTP 404",
        "check the repository URL and that the credentials can see the repository",
    ),
    # GitHub's ref status for every GH013, secret scanning's included: the side-band tells them apart
    _row(ReasonCode.RULESET, r"repository rule violations", _RULESET_HINT, generic=True),
    _row(
        ReasonCode.HOOK_DECLINED,
        r"hook declined",
        "a server-side hook on the target refused the update: its message above says why; ask the "
        "target's administrators to allow the mirror's pushes",
        generic=True,
    ),
)

UNKNOWN = Rejection(
    ReasonCode.UNKNOWN,
    "the target's message above says why; if it does not, retry the run or try the push with git",
)
# Errors that say what they are by their class: the run's own failures, not the target's wording.
_BY_KIND = {
    "auth": ReasonCode.AUTH,
    "secret": ReasonCode.AUTH,  # the credentials' secret is missing, unreadable or malformed
    "not_found": ReasonCode.NOT_FOUND,
}
_HINTS = {row.code: row.hint for row in CATALOGUE}


def _first(text: str, *, generic: bool | None) -> Rejection | None:
    for row in CATALOGUE:
        if generic is not None and row.generic != generic:
            continue
        if row.pattern.search(text):
            return Rejection(row.code, row.hint)
    return None


def classify(reason: str, remote_messages: str = "") -> Rejection:
    """The class of one refusal from the ref's status reason and the push's `remote:` lines."""
    return (
        _first(reason, generic=False)
        or (_first(remote_messages, generic=None) if remote_messages else None)
        or _first(reason, generic=True)
        or UNKNOWN
    )


def classify_failure(message: str, kind: str | None, remote_messages: str = "") -> Rejection:
    """The class of a failed run: from the error's kind when it names one, else from its wording."""
    code = _BY_KIND.get(kind or "")
    if code is not None:
        return Rejection(code, _HINTS[code])
    return classify(message, remote_messages)


def with_hints(text: str, hints: list[str], limit: int) -> str:
    """`text` cut to fit `limit` characters with the distinct hints as its last lines."""
    unique = list(dict.fromkeys(h for h in hints if h))
    if not unique:
        return text[:limit]
    tail = "\n\n" + "\n".join(f"Hint: {h}" for h in unique)
    return text[: max(0, limit - len(tail))] + tail
