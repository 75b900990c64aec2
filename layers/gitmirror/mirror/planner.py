"""The mirror decision: both sides' refs + ancestry + options -> one decision per ref.

Pure: no I/O, no git. This is GitLab's push-mirror contract (Gitaly's UpdateRemoteMirror):

| source  | target  | keep_divergent_refs off              | keep_divergent_refs on                  |
|---------|---------|--------------------------------------|-----------------------------------------|
| X       | absent  | create                               | create                                  |
| X       | X       | nothing                              | nothing                                 |
| X       | Y       | update when the delta proves a       | update if Y is an ancestor of X,        |
|         |         | fast-forward, else force_update      | else skip_divergent                     |
| absent  | Y       | delete if Y is merged into the       | nothing                                 |
|         |         | source's default branch, else keep   |                                         |

Only refs/heads/* and refs/tags/* are considered; branch filters narrow the branches in scope (tags are
always in scope).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from gitmirror.mirror.refmaps import ListingDelta, delta_of
from gitmirror.values import BRANCH_PREFIX, TAG_PREFIX, Action, MirrorOptions, RefUpdate

if TYPE_CHECKING:
    from gitmirror.patterns import BranchMatcher

# CodeCommit accepts at most 4,000 ref updates per push; GitHub documents no limit but large pushes
# time out. Stay well below both.
DEFAULT_BATCH_SIZE = 1000


class AncestryOracle(Protocol):
    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        """True when `ancestor` (peeled) is reachable from `descendant` (peeled); None when unknown.
        May fetch what it needs to know."""

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when what is already at hand (the delta) proves it; never fetches anything."""


# git-check-ref-format's rules (as dulwich's check_ref_format implements them) in one pattern: a
# control character, space, ~ ^ : ? * [ or \, "..", "@{", an empty component, a component starting
# with "." or ending in ".lock", or a trailing "/" or ".". One scan per name: listings hold 500,000.
_BAD_REF_NAME = re.compile(r"[\x00-\x1f\x7f ~^:?*\[\\]|\.\.|@\{|//|(?:^|/)\.|\.lock(?:/|$)|[/.]$|^/")


def is_mirrorable_ref(name: str) -> bool:
    """Branches and tags with well-formed names; never HEAD, peeled entries or other namespaces."""
    if not (name.startswith(BRANCH_PREFIX) or name.startswith(TAG_PREFIX)):
        return False
    return _BAD_REF_NAME.search(name) is None


def compile_branch_matcher(options: MirrorOptions) -> BranchMatcher | None:
    """Every filter in one matcher (linear time: globs by substring search, the regex by RE2)."""
    if not options.filters_branches:
        return None
    from gitmirror.patterns import BranchMatcher  # RE2 only where a filter is configured

    return BranchMatcher(options.branch_filters, options.branch_regex)


def in_scope(name: str, matcher: BranchMatcher | None) -> bool:
    if not is_mirrorable_ref(name):
        return False
    if matcher is None or not name.startswith(BRANCH_PREFIX):
        return True
    return matcher.matches(name[len(BRANCH_PREFIX) :])


def scoped_refs(refs: Mapping[str, str], options: MirrorOptions) -> Mapping[str, str]:
    """The refs in scope. Most of a large listing usually is: then a view of it without the others
    (`refmaps.ListingDelta`), not a copy."""
    matcher = compile_branch_matcher(options)
    base, changed, missing = (
        (refs.base, refs.changed, refs.missing) if isinstance(refs, ListingDelta) else (refs, {}, set())
    )
    outside = {name for name in base if name not in missing and not in_scope(name, matcher)}
    if 4 * len(outside) > len(base):
        return {name: sha for name, sha in refs.items() if in_scope(name, matcher)}
    kept = {name: sha for name, sha in changed.items() if in_scope(name, matcher)}
    return ListingDelta(base, kept, missing | outside)


def same_in_scope(
    source_refs: Mapping[str, str], target_refs: Mapping[str, str], options: MirrorOptions
) -> bool:
    """Whether the two listings are equal in scope (nothing to create, update or delete); without a
    copy of either when the target is held as its differences from the source."""
    delta = delta_of(target_refs, source_refs)
    if delta is not None:
        matcher = compile_branch_matcher(options)
        return not any(in_scope(name, matcher) for name in delta.differing())
    return scoped_refs(source_refs, options) == scoped_refs(target_refs, options)


def names_that_may_differ(refs: Mapping[str, str], other: Mapping[str, str]) -> list[str]:
    """The names of `refs` whose entry `other` may not equal, sorted: all of them, or when both are
    views of one listing (`ListingDelta`s of the same base) only those either view changes."""
    if isinstance(refs, ListingDelta) and isinstance(other, ListingDelta) and refs.base is other.base:
        return sorted(name for name in refs.differing() | other.differing() if name in refs)
    return sorted(refs)


def plan_ref_updates(
    source_refs: Mapping[str, str],
    target_refs: Mapping[str, str],
    default_branch: str | None,
    oracle: AncestryOracle,
    options: MirrorOptions,
) -> list[RefUpdate]:
    """Decide every ref. Unchanged refs produce no entry. `default_branch` is a full ref name or None.

    The default branch is read from the unfiltered source refs: deletion safety does not depend on
    which branches the filter mirrors.
    """
    source = scoped_refs(source_refs, options)
    target = scoped_refs(target_refs, options)
    decisions: list[RefUpdate] = []

    for ref in names_that_may_differ(source, target):
        new = source[ref]
        old = target.get(ref)
        if old is None:
            decisions.append(RefUpdate(ref=ref, action=Action.CREATE, new=new))
        elif old == new:
            continue
        elif not options.keep_divergent_refs:
            # The ref moves either way; ancestry only labels it, so nothing is fetched to find out.
            label = Action.UPDATE if oracle.proves_ancestor(old, new) else Action.FORCE_UPDATE
            decisions.append(RefUpdate(ref=ref, action=label, old=old, new=new))
        elif oracle.is_ancestor(old, new):
            decisions.append(RefUpdate(ref=ref, action=Action.UPDATE, old=old, new=new))
        else:
            decisions.append(RefUpdate(ref=ref, action=Action.SKIP_DIVERGENT, old=old, new=new))

    default_tip = source_refs.get(default_branch) if default_branch else None
    for ref in names_that_may_differ(target, source):
        if ref in source or options.keep_divergent_refs or default_tip is None:
            continue
        old = target[ref]
        # The deletion rule: only work already merged into the default branch may disappear.
        if oracle.is_ancestor(old, default_tip):
            decisions.append(RefUpdate(ref=ref, action=Action.DELETE, old=old))
    return decisions


def divergent_refs(decisions: Iterable[RefUpdate]) -> list[str]:
    return sorted(d.ref for d in decisions if d.action == Action.SKIP_DIVERGENT)


def _conflicts(a: str, b: str) -> bool:
    """Directory/file conflict: one name is a path prefix of the other (refs/heads/a vs a/b)."""
    return a.startswith(b + "/") or b.startswith(a + "/")


def batch_ref_updates(
    decisions: Sequence[RefUpdate],
    default_branch: str | None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[list[RefUpdate]]:
    """Order pushes: deletions that free a name a creation needs, then the default branch, then the rest.

    Splitting the D/F-conflicting deletions into an earlier push makes `refs/heads/a` -> `refs/heads/a/b`
    work on every server, whatever its ref backend does within one transaction.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    pushes = [d for d in decisions if d.action != Action.SKIP_DIVERGENT]
    created = [d.ref for d in pushes if d.action != Action.DELETE]
    first = [
        d for d in pushes if d.action == Action.DELETE and any(_conflicts(d.ref, name) for name in created)
    ]
    first_refs = {d.ref for d in first}
    rest = [d for d in pushes if d.ref not in first_refs]
    rest.sort(key=lambda d: (d.ref != default_branch, d.action == Action.DELETE, d.ref))

    batches: list[list[RefUpdate]] = []
    for group in (first, rest):
        for start in range(0, len(group), batch_size):
            batches.append(list(group[start : start + batch_size]))
    return batches
