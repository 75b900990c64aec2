"""One mirror run: list both sides, fetch what is needed, plan, push in batches, report.

Deciding is `planner.plan_ref_updates`; moving bytes is `transport.Remote`. This module sequences them
and turns what happened into a `SyncResult`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from typing import TYPE_CHECKING

from dulwich.errors import ApplyDeltaError, ChecksumMismatch
from dulwich.objects import Blob, ObjectID
from dulwich.repo import Repo

from gitmirror.errors import MirrorError, ProtocolFailure, TimedOut
from gitmirror.mirror.planner import (
    DEFAULT_BATCH_SIZE,
    AncestryOracle,
    batch_ref_updates,
    divergent_refs,
    names_that_may_differ,
    plan_ref_updates,
    same_in_scope,
    scoped_refs,
)
from gitmirror.mirror.refmaps import delta_of
from gitmirror.mirror.transport.deadline import Deadline
from gitmirror.mirror.transport.remote import PushOutcome, RefListing, Remote, ThinPackRefused
from gitmirror.scrub import one_line, scrub
from gitmirror.values import (
    Action,
    LfsStats,
    MirrorOptions,
    RefUpdate,
    RunStatus,
    SyncProgress,
    SyncResult,
    SyncStats,
)

# A no-op run (both sides equal in scope) needs only the listings: what fetches, plans ancestry, copies
# LFS objects or classifies refusals is imported where it is first used (`gitmirror sync` starts faster).
if TYPE_CHECKING:
    from gitmirror.mirror.ancestry import CommitGraph, ObjectLookup
    from gitmirror.mirror.lfs.follow import PointerFollower
    from gitmirror.mirror.lfs.pointers import LfsPointer, PackScan
    from gitmirror.mirror.transport.fetched_pack import FetchedPack

# Stop starting new pushes when less than this many seconds remain before the deadline.
DEADLINE_MARGIN_SECONDS = 20.0
# When a whole push is refused (a pre-receive hook declines everything it is given), halve it to find
# the refs that are really refused; this bounds the extra pushes that search may cost.
MAX_ISOLATION_PUSHES = 64
_MAX_REASON = 600
# A commit graph pack up to this size is read into memory (about 3x its size); a larger one is indexed
# on disk and read from there.
MAX_SCANNED_GRAPH_BYTES = 32 * 1024 * 1024
# Up to this many target refs, receive-pack's advertisement is read while the pack downloads (kept
# whole: about 100 bytes a ref); a larger target's is read by the first push, for the planned refs only.
READ_AHEAD_MAX_REFS = 20_000
# How receive-pack says a ref's objects are not there (git: "missing necessary objects").
_MISSING_OBJECTS = re.compile(r"missing|connectivity|unpack|bad object", re.IGNORECASE)


class _Run:
    def __init__(
        self,
        source: Remote,
        target: Remote,
        options: MirrorOptions,
        batch_size: int,
        remaining_seconds: Callable[[], float] | None,
        mode: str,
        background: futures.Executor,
        dry_run: bool = False,
        progress: Callable[[SyncProgress], None] | None = None,
        max_push_bytes: int | None = None,
        time_limit: float | None = None,
    ) -> None:
        self.mode = mode
        self.dry_run = dry_run
        self._progress = progress
        self.pushing = False  # a failure now is the target's answer to a push: its side-band says why
        self.background = background  # network waits that overlap (a listing, the negotiation round)
        self.fetched: FetchedPack | None = None
        self.pointer_scan: PointerFollower | None = None
        self.source = source
        self.target = target
        self.options = options
        self.batch_size = batch_size
        self.remaining_seconds = remaining_seconds
        self.done: list[RefUpdate] = []
        self.lfs = LfsStats()
        self.pushes = 0
        self.isolation_budget = MAX_ISOLATION_PUSHES
        self.objects_delivered = False  # pass-through: an earlier push already carried the pack
        self.local = False  # both repositories on this machine: git pushes from one to the other
        # fetches the delta again, not thin, for a target that cannot take the thin one as it is
        self.refetch_whole: Callable[[], FetchedPack] | None = None
        self.target_peeled: dict[str, str] = {}  # the target's annotated tag ids -> what they peel to
        self.tips: _SourceTips | None = None  # the source tips in scope (and its default branch's)
        self.history_pointers: set[LfsPointer] | None = None  # full mode: the whole history's, read once
        self.max_push_bytes = max_push_bytes
        self.time_limit = time_limit
        self.started = time.monotonic()
        self.bytes_pushed = 0
        self.remaining: list[str] = []  # refs left for a later run (the time limit stopped this one)

    def time_up(self) -> bool:
        """No new push once the time limit has passed, but every run makes at least one."""
        return (
            self.time_limit is not None
            and self.pushes > 0
            and time.monotonic() - self.started >= self.time_limit
        )

    def report(self, phase: str, pushes_left: int = 0) -> None:
        if self._progress is not None:
            self._progress(SyncProgress(phase, self.pushes, self.pushes + pushes_left, self.lfs.objects))

    def _send(
        self, repo: Repo, batch: Sequence[RefUpdate], *, send_objects: bool, sent: PushOutcome | None = None
    ) -> PushOutcome:
        """One push of `batch`, or (`sent`) the outcome of one already made with the pack streamed."""
        self.pushes += 1
        updates = _updates(batch)
        if sent is not None:
            outcome = sent
        elif self.local:
            assert self.source.url.local_path is not None
            return self.target.push_from_local(self.source.url.local_path, updates)
        else:
            try:
                outcome = self.target.push(repo, updates, fetched=self.fetched, send_objects=send_objects)
            except ThinPackRefused:
                if self.refetch_whole is None or self.fetched is None:
                    raise
                self.fetched.discard()
                self.fetched, self.refetch_whole = self.refetch_whole(), None
                outcome = self.target.push(repo, updates, fetched=self.fetched, send_objects=send_objects)
        if send_objects and self.fetched is not None and any(r is None for r in outcome.status.values()):
            self.bytes_pushed += self.fetched.size
        return outcome

    def check_time(self, what: str) -> None:
        if self.remaining_seconds is not None and self.remaining_seconds() < DEADLINE_MARGIN_SECONDS:
            raise TimedOut(f"timed out: stopped before {what} because the run's time was nearly used up")

    def push(self, repo: Repo, batch: Sequence[RefUpdate], sent: PushOutcome | None = None) -> None:
        """Push `batch` and record each ref's result; `sent`: the batch was pushed already (streamed),
        this is the target's answer."""
        if self.dry_run:
            self.done.extend(batch)  # the plan, as a real run would carry it out
            return
        if sent is None:
            self.check_time("pushing")
        self.pushing = True
        outcome = self._send(repo, batch, send_objects=not self.objects_delivered, sent=sent)
        refused = {ref: reason for ref, reason in outcome.status.items() if reason}
        if self.objects_delivered and any(_MISSING_OBJECTS.search(r) for r in refused.values()):
            # The target did not keep the objects an earlier push of this run sent: send them again.
            again = [d for d in batch if d.ref in refused and _MISSING_OBJECTS.search(refused[d.ref])]
            for ref, reason in self._send(repo, again, send_objects=True).status.items():
                if reason:
                    refused[ref] = reason
                else:
                    refused.pop(ref, None)
        if any(d.action != Action.DELETE and d.ref not in refused for d in batch):
            self.objects_delivered = self.fetched is not None
        if len(batch) > 1 and len(refused) == len(batch) and self.isolation_budget >= 2:
            self.isolation_budget -= 2
            mid = len(batch) // 2
            self.push(repo, batch[:mid])
            self.push(repo, batch[mid:])
            return
        for decision in batch:
            reason = refused.get(decision.ref)
            if reason is None:
                self.done.append(decision)
                continue
            from gitmirror.mirror.rejections import classify

            rejection = classify(reason, outcome.remote_messages)
            if outcome.remote_messages:
                reason = f"{reason} ({outcome.remote_messages.replace(chr(10), '; ')})"
            self.done.append(
                RefUpdate(
                    ref=decision.ref,
                    action=Action.REJECTED,
                    old=decision.old,
                    new=decision.new,
                    error=scrub(one_line(reason, _MAX_REASON)),
                    reason_code=rejection.code.value,
                    hint=rejection.hint,
                )
            )


def _updates(batch: Sequence[RefUpdate]) -> dict[str, tuple[str | None, str | None]]:
    return {d.ref: (d.old, None if d.action == Action.DELETE else d.new) for d in batch}


def sync_mirror(
    source: Remote,
    target: Remote,
    options: MirrorOptions | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    remaining_seconds: Callable[[], float] | None = None,
    workdir_parent: str | None = None,
    mode: str = "incremental",
    dry_run: bool = False,
    progress: Callable[[SyncProgress], None] | None = None,
    max_push_bytes: int | None = None,
    time_limit: float | None = None,
) -> SyncResult:
    """Mirror `source` into `target` with GitLab push-mirror semantics. Never raises for git failures:
    they become a `failed` result with a scrubbed, actionable error, its `reason_code` and `hint`.

    `dry_run`: list both sides and fetch what the ancestry questions need, but push nothing; the result
    holds the plan (the actions a real run would take) and the status a real run would end with, short
    of refusals only the target can tell. `progress`, when given, is called (in the caller's thread) as
    the run enters each phase and after each push.

    `max_push_bytes`: no push body is larger; a larger history goes in several pushes (`chunked`; a
    dry run plans as one). `time_limit`: seconds after which no new push starts (at least one always
    does); refs left then are the result's `remaining_refs`, with status `incomplete`."""
    options = options or MirrorOptions()
    started = time.monotonic()
    if mode not in ("incremental", "full"):
        raise ValueError(f"unknown transfer mode {mode!r}")
    # every network read of the run ends by the time the caller gave it (a dripping server included)
    deadline = Deadline(remaining_seconds()) if remaining_seconds is not None else None
    source.deadline = target.deadline = deadline
    target.forget_receive_advertisement()  # read afresh by this run
    # threads for the network waits that overlap the run's own (the target's listing; while the pack
    # downloads, the negotiation round and receive-pack's advertisement); joined when the run ends
    with (
        deadline if deadline is not None else contextlib.nullcontext(),
        futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="gitmirror-sync") as background,
    ):
        run = _Run(
            source,
            target,
            options,
            batch_size,
            remaining_seconds,
            mode,
            background,
            dry_run,
            progress,
            None if dry_run else max_push_bytes,
            time_limit,
        )
        skipped: list[RefUpdate] = []
        error: str | None = None
        failure: MirrorError | None = None
        side_band = ""
        transfer = "none"
        try:
            run.report("listing")
            # Both sides' refs at once: the two advertisements are independent round trips. The
            # target's answer is read once the source's is, against it: what they share is held once.
            source_listed: futures.Future[RefListing | None] = futures.Future()
            target.listing_like = lambda: _shared_base(source_listed.result())
            target_listing = run.background.submit(target.list_refs)
            try:
                src = source.list_refs()
                source_listed.set_result(src)
            finally:
                if not source_listed.done():
                    source_listed.set_result(None)
                futures.wait([target_listing])  # a source failure is reported first, as when listing in turn
                target.listing_like = None
            dst = target_listing.result()
            default_branch = src.head if src.head in src.refs else None
            # equal in scope: nothing to create, update or delete (full mode still reads the history's
            # LFS pointers: objects an earlier run left behind are copied)
            if not same_in_scope(src.refs, dst.refs, options) or (
                mode == "full" and options.lfs and not dry_run
            ):
                run.target_peeled = {
                    dst.refs[ref]: peeled for ref, peeled in dst.peeled.items() if ref in dst.refs
                }
                transfer = _transfer(run, src.refs, dst.refs, default_branch, workdir_parent, skipped)
        except MirrorError as exc:
            error = exc.message
            failure = exc
            side_band = target.remote_messages() if run.pushing else ""
            if side_band and side_band not in error:
                error = scrub(f"{error} (the target said: {side_band.replace(chr(10), '; ')})")[:_MAX_REASON]
        run.report("done")
    rejection = None
    if error is not None:
        from gitmirror.mirror.rejections import classify_failure

        rejection = classify_failure(error, failure.kind if failure else None, side_band)
    result_refs = sorted(run.done + skipped, key=lambda r: r.ref)
    if error is not None:
        status = RunStatus.FAILED
    elif run.remaining:
        status = RunStatus.INCOMPLETE
    elif run.lfs.error or any(r.action in (Action.SKIP_DIVERGENT, Action.REJECTED) for r in result_refs):
        status = RunStatus.PARTIAL
    else:
        status = RunStatus.SUCCESS
    return SyncResult(
        status=status,
        divergent_refs=divergent_refs(result_refs),
        refs=result_refs,
        error=error,
        error_kind=failure.kind if failure else None,
        retryable=failure.retryable if failure else False,
        reason_code=rejection.code.value if rejection else None,
        hint=rejection.hint if rejection else None,
        dry_run=dry_run,
        stats=SyncStats(
            bytes_received=source.stats.bytes_received + target.stats.bytes_received,
            bytes_sent=source.stats.bytes_sent + target.stats.bytes_sent,
            pushes=run.pushes,
            bytes_pushed=run.bytes_pushed,
            duration_seconds=round(time.monotonic() - started, 3),
            transfer=transfer,
        ),
        lfs=run.lfs,
        remaining_refs=sorted(set(run.remaining)),
    )


def _shared_base(listing: RefListing | None) -> Mapping[str, str] | None:
    """The source's refs for the target's listing to share, when they came in ascending order."""
    return listing.refs if listing is not None and listing.ascending else None


def _one_push_budget(run: _Run, refs: list[str]) -> int | None:
    """The largest pack the first push may carry under `max_push_bytes`: it also carries the
    commands of up to a batch of these refs."""
    if run.max_push_bytes is None:
        return None
    from gitmirror.mirror.limits import command_bytes

    longest = sorted(set(refs), key=len, reverse=True)[: run.batch_size]
    return max(1, run.max_push_bytes - command_bytes(longest))


def fetch_commit_graph(run: _Run, workdir: str, repos: list[Repo], wants: set[str]) -> CommitGraph:
    """The source's whole commit graph for `wants` in scratch storage: commits and tags only when the
    source supports partial clone (`filter tree:0`), else a full fetch."""
    from gitmirror.mirror.ancestry import CommitGraph

    graph = Repo.init_bare(os.path.join(workdir, "graph.git"), mkdir=True)
    repos.append(graph)
    run.check_time("fetching the commit graph")
    run.report("fetching commit graph")
    filter_spec = b"tree:0" if run.source.supports_filter() else None
    fetched = run.source.fetch_pack_file(graph, wants, [], filter_spec=filter_spec)
    if filter_spec is None or fetched.size <= MAX_SCANNED_GRAPH_BYTES:
        # read in one pass (3x faster than indexing), keeping only the commits and tags, then drop the
        # file; unfiltered (a source without partial clone) this is also what keeps memory from
        # following the largest blob, which indexing would hold whole. A large commits-only pack is
        # indexed instead: held as raw commits it would take about 3x its size.
        try:
            return CommitGraph(_delta_commits(fetched))
        finally:
            fetched.discard()
    fetched.index()
    packs = list(graph.object_store.packs)
    # one pack: look objects up in it directly (the store checks for a multi-pack index on every lookup)
    return CommitGraph(packs[0] if len(packs) == 1 else graph.object_store)


def failed_result(message: str, kind: str | None = None) -> SyncResult:
    """A run that failed before the engine could start (configuration, credentials, a crash)."""
    from gitmirror.mirror.rejections import classify_failure

    rejection = classify_failure(message, kind)
    return SyncResult(
        status=RunStatus.FAILED,
        error=message,
        error_kind=kind,
        reason_code=rejection.code.value,
        hint=rejection.hint,
    )


def _delta_commits(fetched: FetchedPack) -> ObjectLookup:
    """The delta's commits for the partial graph, scanned from the pack file (never indexed for this:
    indexing holds each object whole in memory, a large blob included)."""
    from gitmirror.mirror.ancestry import commits_in_pack

    if fetched.empty:
        return {}
    try:
        if fetched.indexed:
            return fetched.repo.object_store
        return commits_in_pack(fetched.file)
    except (OSError, ValueError, zlib.error, ApplyDeltaError, ChecksumMismatch) as exc:
        raise ProtocolFailure(f"the source sent a pack that cannot be read: {one_line(exc, 120)}") from None


def _copy_lfs_objects(run: _Run, store: Repo, pointers: set[LfsPointer] | None = None) -> None:
    """Before any ref is pushed: the LFS objects the pointers in the objects sent name, to the target.
    Whatever is sent is in the fetched pack (pass-through) or else in the scratch store (a full fetch)."""
    from gitmirror.mirror.lfs import sync as lfs

    run.check_time("copying LFS objects")
    if pointers is None:
        pointers = _lfs_pointers(run, store)
    if pointers:
        run.report("copying LFS objects")
    run.lfs = lfs.copy_lfs_objects(run.source, run.target, pointers, check_time=run.check_time)


@contextlib.contextmanager
def _reading_pack() -> Iterator[None]:
    """What reading a damaged pack raises, as the run's failure."""
    try:
        yield
    except (OSError, ValueError, IndexError, KeyError, zlib.error, ApplyDeltaError, ChecksumMismatch) as exc:
        raise ProtocolFailure(f"the source sent a pack that cannot be read: {type(exc).__name__}") from None


def _lfs_pointers(run: _Run, store: Repo) -> set[LfsPointer]:
    """The LFS pointers in what the run sends: the fetched pack, or else the scratch store. A thin pack's
    pointers stored as deltas onto older pointers the target has are read onto those bases, fetched
    from the source by id (small blobs, one request); a source that will not send them costs the
    pack again, whole."""
    if run.mode == "full" and run.history_pointers is None:
        run.history_pointers = _history_pointers(run, store)
    return (run.history_pointers or set()) | _sent_pointers(run, store)


def _sent_pointers(run: _Run, store: Repo) -> set[LfsPointer]:
    """The pointers in what this run's pushes send."""
    from gitmirror.mirror.lfs import sync as lfs

    with _reading_pack():
        if run.pointer_scan is not None:
            found = run.pointer_scan.result()
        elif run.fetched is not None:
            found = lfs.pointers_in_fetched(run.fetched)
        else:
            return lfs.pointers_in_store(store)
        resolved = _resolved(run, store, found)
        if resolved is not None:
            return resolved
        if run.fetched is not None and not run.fetched.thin:
            # a base after its delta in a whole pack, not sent by id: index the pack and read it all
            run.fetched.index()
            return lfs.pointers_in_fetched(run.fetched).pointers
    if run.refetch_whole is None or run.fetched is None:
        raise ProtocolFailure("the source did not send the objects needed to read its pack's LFS pointers")
    run.check_time("fetching the delta again")
    if run.pointer_scan is not None:
        run.pointer_scan.stop()
        run.pointer_scan = None
    run.fetched.discard()
    run.fetched, run.refetch_whole = run.refetch_whole(), None
    with _reading_pack():
        return lfs.pointers_in_fetched(run.fetched).pointers  # whole: every base is in it


def _resolved(run: _Run, store: Repo, found: PackScan) -> set[LfsPointer] | None:
    """Every pointer of a scan, its pending deltas read onto their bases fetched by id; None when the
    source did not send them all."""
    if not found.pending:
        return found.pointers
    wanted = found.base_ids
    bases = _small_blobs(run, store, wanted)
    return found.resolve(bases) if wanted <= bases.keys() else None


def _history_pointers(run: _Run, store: Repo) -> set[LfsPointer]:
    """Full mode (after a run left LFS objects behind): the pointers of the whole history the source's
    tips reach, from a pack of all of it, scanned as it downloads and dropped (never indexed: memory
    does not follow the objects; the push still sends only what the target lacks)."""
    from gitmirror.mirror.lfs.follow import PointerFollower
    from gitmirror.mirror.transport.fetched_pack import FetchedPack

    run.check_time("reading the whole history's LFS pointers")
    run.report("fetching")
    repo = Repo.init_bare(os.path.join(os.path.dirname(store.path), "history.git"), mkdir=True)
    fetched = FetchedPack(repo)
    follower = PointerFollower(fetched)
    try:
        with _reading_pack():
            run.source.fetch_pack_file(
                repo, run.tips.all() if run.tips is not None else set(), [], into=fetched
            )
            found = _resolved(run, store, follower.result())
        if found is None:
            raise ProtocolFailure(
                "the source did not send the objects needed to read its history's LFS pointers"
            )
        return found
    finally:
        follower.stop()
        fetched.discard()
        repo.close()


def _small_blobs(run: _Run, store: Repo, ids: set[bytes]) -> dict[bytes, bytes]:
    """The contents of these blobs (binary ids), fetched from the source by id into scratch storage;
    {} when the source will not send objects it does not advertise as tips."""
    run.check_time("fetching LFS pointer bases")
    # a directory of its own each time: a full run may ask twice (its history's pack, then the delta's)
    repo = Repo.init_bare(tempfile.mkdtemp(prefix="pointer-bases-", dir=os.path.dirname(store.path)))
    try:
        try:
            run.source.fetch_pack_file(repo, {i.hex() for i in ids}, []).index()
        except TimedOut:
            raise
        except MirrorError:
            return {}
        found: dict[bytes, bytes] = {}
        for oid in ids:
            key = ObjectID(oid.hex().encode("ascii"))
            if key in repo.object_store:
                obj = repo.object_store[key]
                if obj.type_num == Blob.type_num:
                    found[oid] = obj.as_raw_string()
        return found
    finally:
        repo.close()


def _copy_step_lfs(run: _Run, store: Repo) -> None:
    """The LFS objects of one chunk's pack (`run.fetched`), before its push; counts add up."""
    if not run.options.lfs or run.dry_run or run.local or run.fetched is None:
        return
    before = run.lfs
    _copy_lfs_objects(run, store)
    run.lfs = LfsStats(
        objects=before.objects + run.lfs.objects,
        bytes=before.bytes + run.lfs.bytes,
        error=before.error or run.lfs.error,
    )


def _tips_to_place(
    source: Mapping[str, str], target: Mapping[str, str], tips: _SourceTips, keep_divergent_refs: bool
) -> bool:
    """Whether the planner may ask about a target tip that is not also a source tip (both maps in
    scope): the old tips of updated refs with keep-divergent-refs on, else those of target-only refs
    (the deletion rule). A target tip equal to a source tip is known to the source."""
    asked = {
        sha
        for ref in names_that_may_differ(target, source)
        if source.get(ref) != (sha := target[ref])
        and (ref in source if keep_divergent_refs else ref not in source)
    }
    return bool(asked - tips.among(asked))


class _SourceTips:
    """The tips of the source's refs in scope and of its default branch. The whole set is built only
    where a path needs it (400,000 tips are 16 MiB a set); most runs ask about a few."""

    def __init__(
        self, in_scope: Mapping[str, str], source_refs: Mapping[str, str], default_branch: str | None
    ) -> None:
        self.in_scope = in_scope
        self.default_tip = source_refs[default_branch] if default_branch is not None else None
        self._all: set[str] | None = None

    def all(self) -> set[str]:
        if self._all is None:
            self._all = set(self.in_scope.values())
            if self.default_tip is not None:
                self._all.add(self.default_tip)
        return self._all

    def among(self, candidates: set[str]) -> set[str]:
        """Those of `candidates` that are tips (one pass over the refs while the set is not built)."""
        if not candidates:
            return set()
        if self._all is not None:
            return candidates & self._all
        found = {sha for sha in self.in_scope.values() if sha in candidates}
        if self.default_tip in candidates:
            found.add(self.default_tip)
        return found


def _tips_target_lacks(target_refs: Mapping[str, str], source_refs: Mapping[str, str]) -> set[str] | None:
    """The source's tips the target holds under no name, when the target is held as its differences
    from the source (None otherwise): only the old tips of the refs it changes or lacks may be gone."""
    delta = delta_of(target_refs, source_refs)
    if delta is None:
        return None
    differing = delta.differing()
    maybe_gone = {source_refs[name] for name in differing if name in source_refs}
    maybe_gone -= set(delta.changed.values())
    if maybe_gone:  # still held by a ref the target did not change
        maybe_gone -= {
            sha for name, sha in source_refs.items() if sha in maybe_gone and name not in differing
        }
    return maybe_gone


class _Haves:
    """The target's tips to offer as `have`s, most useful first (negotiation rounds stop once the source
    is ready): the default branch, the refs about to move (their new commits sit on their old tips),
    the other refs the source has, then the target's own; by name within each. Produced as they are
    read, each tip once: the first rounds are usually all that is read of 400,000."""

    def __init__(
        self, target_refs: Mapping[str, str], source_refs: Mapping[str, str], default_branch: str | None
    ) -> None:
        self.target_refs = target_refs
        moving: list[str] = []
        own: list[str] = []
        # held as its differences from the source: only those names can be moving or the target's own
        delta = delta_of(target_refs, source_refs)
        self.shared = delta is not None
        differing = delta.changed if delta is not None else target_refs
        for name in differing:
            listed = source_refs.get(name)
            if name == default_branch:
                continue
            if listed is None:
                own.append(name)
            elif listed != target_refs[name]:
                moving.append(name)
        self.first = [default_branch] if default_branch is not None and default_branch in target_refs else []
        self.moving, self.own = sorted(moving), sorted(own)

    def __bool__(self) -> bool:
        return bool(self.target_refs)

    def __iter__(self) -> Iterator[str]:
        placed = {*self.first, *self.moving, *self.own}
        # a shared listing iterates in its (ascending) base's order: no sorted copy of 400,000 names
        names = self.target_refs if self.shared else sorted(self.target_refs)
        equal = (name for name in names if name not in placed)
        seen: set[str] = set()
        for name in itertools.chain(self.first, self.moving, equal, self.own):
            sha = self.target_refs[name]
            if sha not in seen:
                seen.add(sha)
                yield sha

    def unlisted(self, source_refs: Mapping[str, str]) -> list[str]:
        """The tips the source does not list, in this order: only the target's changes can be such."""
        if not self.shared:
            source_tips = set(source_refs.values())
            return [h for h in self if h not in source_tips]
        candidates = {self.target_refs[name] for name in (*self.first, *self.moving, *self.own)}
        listed = {sha for sha in source_refs.values() if sha in candidates}
        names = itertools.chain(self.first, self.moving, self.own)
        return list(dict.fromkeys(sha for name in names if (sha := self.target_refs[name]) not in listed))


def _transfer(
    run: _Run,
    source_refs: Mapping[str, str],
    target_refs: Mapping[str, str],
    default_branch: str | None,
    workdir_parent: str | None,
    skipped: list[RefUpdate],
) -> str:
    """Fetch from the source into scratch storage, plan, push. Returns the transfer mode used.

    incremental (default): offer the target's tips as haves, so the source sends only what the target
    lacks; that pack is written to disk unindexed and passed through to the target as it is (into an
    empty target, while it downloads). Ancestry comes from the delta when it can; otherwise from the
    commits between two tips, or a commit-graph-only fetch (`filter tree:0`, when the source supports
    partial clone, else a whole one read in one pass).
    full: the same, and the whole history's LFS pointers are read as well (after a run that left LFS
    objects behind).
    """
    from gitmirror.mirror.ancestry import CommitGraph, LayeredOracle
    from gitmirror.mirror.chunked import push_in_chunks
    from gitmirror.mirror.lfs.follow import PointerFollower
    from gitmirror.mirror.scratch import scratch_directory
    from gitmirror.mirror.transport.fetched_pack import FetchedPack, PackOverLimit

    if run.target.can_push_locally_from(run.source):
        return _local_transfer(run, source_refs, target_refs, default_branch, skipped)
    in_scope = scoped_refs(source_refs, run.options)
    tips = _SourceTips(in_scope, source_refs, default_branch)
    # Only what the target lacks is asked for: a tip the target already has (under any name) comes
    # with nothing new, and with thousands of refs the want lines alone would be megabytes.
    lacking = _tips_target_lacks(target_refs, source_refs)
    wants = tips.among(lacking) if lacking is not None else tips.all() - set(target_refs.values())
    with scratch_directory(workdir_parent) as workdir:
        repos: list[Repo] = []
        try:
            store = Repo.init_bare(os.path.join(workdir, "objects.git"), mkdir=True)
            repos.append(store)
            run.check_time("fetching")
            run.report("fetching")
            run.tips = tips
            haves = _Haves(target_refs, source_refs, default_branch)
            if not haves:
                run.history_pointers = set()  # the pack sent is the whole history: its scan is enough

            # Asked about only the target tips the source does not list (it has those it lists);
            # any source tip serves as the negotiation's want.
            unlisted = haves.unlisted(source_refs)

            def ask_source() -> set[str] | None:
                want = min(wants) if wants else min(tips.all(), default=None)
                known = run.source.known_objects([] if want is None else [want], unlisted)
                if known is None:
                    return None
                source_tips = set(source_refs.values())
                if lacking is not None:  # the target holds every source tip but those
                    return known | (source_tips - lacking)
                return known | (set(target_refs.values()) & source_tips)

            # Which target tips the source has matters only for tips the delta cannot place; ask
            # while the pack downloads, so the answer is there if the planner needs it.
            negotiation = (
                run.background.submit(ask_source)
                if _tips_to_place(
                    in_scope, scoped_refs(target_refs, run.options), tips, run.options.keep_divergent_refs
                )
                else None
            )
            # capped: the whole delta in one push if it fits, else in chunks
            budget = _one_push_budget(run, [*in_scope, *scoped_refs(target_refs, run.options)])
            fetched = FetchedPack(store, budget)
            # the LFS pointers are looked for while the pack downloads (another process reads it)
            run.pointer_scan = PointerFollower(fetched) if run.options.lfs and not run.dry_run else None

            def in_chunks() -> str:
                """The delta is over the push-size cap: plan on the commit graph, push in steps."""
                if run.pointer_scan is not None:
                    run.pointer_scan.stop()
                    run.pointer_scan = None  # each chunk's pointers are read from its own pack
                graph = fetch_commit_graph(run, workdir, repos, tips.all())
                push_in_chunks(
                    run, workdir, graph, source_refs, target_refs, default_branch, skipped, _copy_step_lfs
                )
                return "chunked"

            if not haves and wants and budget is None and not run.dry_run and not run.target.url.is_local:
                # an empty target: the plan needs no ancestry, the pack goes on as it arrives (not
                # under a push-size cap: a pack over it would be uploaded up to the cap for nothing)
                _stream_into_empty_target(
                    run, store, fetched, wants, source_refs, target_refs, default_branch
                )
                return "full"
            # Thin where the target completes it (an HTTP receive-pack does): deltas against
            # objects the target has are sent as they are, not with their bases (LFS pointers
            # stored so are read onto bases fetched by id). Not under a push-size cap (a whole
            # re-fetch would not be held to it).
            thin = bool(haves) and not run.target.url.is_local and budget is None
            if wants and not run.dry_run and len(target_refs) <= READ_AHEAD_MAX_REFS:
                # what the source sends is new to the target: a push follows, and its first round
                # trip (receive-pack's advertisement) is made while the pack downloads
                run.target.read_receive_advertisement_ahead(run.background)
            try:
                run.source.fetch_pack_file(store, wants, haves, into=fetched, thin=thin)
            except PackOverLimit:
                return in_chunks()
            finally:
                if negotiation is not None:
                    futures.wait([negotiation])
            run.fetched = fetched
            if thin:
                run.refetch_whole = lambda: run.source.fetch_pack_file(store, wants, haves)

            def load_range(ancestor: str, descendant: str) -> CommitGraph:
                """The commits between two tips: `want descendant`, `have ancestor`, commits only
                where the source filters (else with their trees and blobs, still just the range)."""
                repo = Repo.init_bare(os.path.join(workdir, f"range-{len(repos)}.git"), mkdir=True)
                repos.append(repo)
                run.check_time("fetching ancestry")
                commits_only = b"tree:0" if run.source.supports_filter() else None
                pack = run.source.fetch_pack_file(repo, {descendant}, [ancestor], filter_spec=commits_only)
                try:
                    return CommitGraph(_delta_commits(pack), complete=False)
                finally:
                    pack.discard()

            oracle: AncestryOracle = LayeredOracle(
                lambda: CommitGraph(_delta_commits(fetched), complete=False),
                lambda: fetch_commit_graph(run, workdir, repos, tips.all()),
                # not asked in advance: ask now (one round), should the planner need it after all
                negotiation.result if negotiation is not None else ask_source,
                run.target_peeled,
                load_range=load_range,
            )
            # full: the run also reads the whole history's LFS pointers (`_lfs_pointers`)
            mode = "incremental" if haves and run.mode != "full" else "full"
            _plan_and_push(run, store, source_refs, target_refs, default_branch, oracle, skipped)
            if isinstance(oracle, LayeredOracle) and (oracle.complete is not None or oracle.ranges):
                mode += "+graph"
        finally:
            if run.pointer_scan is not None:
                run.pointer_scan.stop()
            if run.fetched is not None:
                run.fetched.discard()
            for repo in repos:
                repo.close()
    return mode


class _NoAncestry:
    """For a target with no branches or tags: every decision is a creation, which asks nothing."""

    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        return None

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        return False


def _stream_into_empty_target(
    run: _Run,
    store: Repo,
    fetched: FetchedPack,
    wants: set[str],
    source_refs: Mapping[str, str],
    target_refs: Mapping[str, str],
    default_branch: str | None,
) -> None:
    """Mirror into a target that has no branch or tag: plan first (creations only), then push the first
    batch while the pack downloads, its bytes sent on as they arrive, so the target indexes them while
    the source is still sending (download and upload overlap instead of following each other).

    The pack's checksum is held back until the download is complete and checked and the LFS pointer
    scan found nothing to copy first; otherwise the push is stopped short of it (the target, lacking
    the checksum, keeps nothing) and the run goes on as usual: LFS objects, then the pack from disk."""
    from gitmirror.mirror.transport.fetched_pack import PackStream, StreamStopped

    run.report("planning")
    decisions = plan_ref_updates(source_refs, target_refs, default_branch, _NoAncestry(), run.options)
    batches = batch_ref_updates(decisions, default_branch, run.batch_size)
    if not batches:
        return  # nothing in scope to create (the default branch's tip was wanted for ancestry only)
    stream = PackStream(fetched)
    first: PushOutcome | None = None
    pointers: set[LfsPointer] = set()

    def push_as_it_downloads() -> PushOutcome | None:
        if not stream.wait_for_data():
            return None
        return run.target.push(store, _updates(batches[0]), fetched=stream)

    run.check_time("pushing")
    with _pushing_only(run, decisions, carry_pack=True):
        run.target.read_receive_advertisement_ahead(run.background)  # while the source starts its pack
        with (
            stream,
            futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gitmirror-stream") as pool,
        ):
            pushing = pool.submit(push_as_it_downloads)
            try:
                run.source.fetch_pack_file(store, wants, [], into=fetched)
                run.fetched = fetched
                if run.pointer_scan is not None:
                    pointers = _lfs_pointers(run, store)
                if pointers:
                    stream.stop("the LFS objects are copied first")
                else:
                    stream.release()
            except BaseException:
                stream.stop("the download failed")
                raise
            finally:
                futures.wait([pushing])
            try:
                first = pushing.result()
            except StreamStopped:
                first = None  # pushed again below, from the file
            except MirrorError:
                run.pushing = True  # the target's answer: its side-band says why
                raise
        if first is None and pointers:
            _copy_lfs_objects(run, store, pointers)
        _push_batches(run, store, batches, first)


def _local_transfer(
    run: _Run,
    source_refs: Mapping[str, str],
    target_refs: Mapping[str, str],
    default_branch: str | None,
    skipped: list[RefUpdate],
) -> str:
    """Both repositories are on this machine: ancestry is read from the source repository itself (a
    target tip it lacks is in none of its histories), and git pushes the planned updates across."""
    from gitmirror.mirror.ancestry import CommitGraph

    assert run.source.url.local_path is not None
    run.local = True
    with Repo(run.source.url.local_path) as repo:
        oracle = CommitGraph(repo.object_store)
        _plan_and_push(run, repo, source_refs, target_refs, default_branch, oracle, skipped)
    return "local"


def _plan_and_push(
    run: _Run,
    store: Repo,
    source_refs: Mapping[str, str],
    target_refs: Mapping[str, str],
    default_branch: str | None,
    oracle: AncestryOracle,
    skipped: list[RefUpdate],
) -> None:
    run.report("planning")
    decisions = plan_ref_updates(source_refs, target_refs, default_branch, oracle, run.options)
    skipped.extend(d for d in decisions if d.action == Action.SKIP_DIVERGENT)
    # LFS objects first; not between two local paths (no LFS server on either side)
    if (
        run.options.lfs
        and not run.dry_run
        and not run.local
        and (
            run.mode == "full"
            or any(d.action not in (Action.DELETE, Action.SKIP_DIVERGENT) for d in decisions)
        )
    ):
        _copy_lfs_objects(run, store)
    with _pushing_only(run, decisions):
        _push_batches(run, store, batch_ref_updates(decisions, default_branch, run.batch_size))


class _PlannedNames:
    """The refs a plan pushes, as a set made on the first lookup (an empty target asks none)."""

    def __init__(self, decisions: list[RefUpdate]) -> None:
        self._decisions = decisions
        self._names: set[str] | None = None

    def __contains__(self, name: object) -> bool:
        if self._names is None:
            self._names = {d.ref for d in self._decisions}
        return name in self._names


@contextlib.contextmanager
def _pushing_only(run: _Run, decisions: list[RefUpdate], carry_pack: bool = False) -> Iterator[None]:
    """While a plan's pushes carry their own pack (no haves needed): of receive-pack's advertisement
    only the pushed refs' old values matter (the target's refs are known from its listing)."""
    if carry_pack or run.fetched is not None:
        run.target.pushing_only = _PlannedNames(decisions)
    try:
        yield
    finally:
        run.target.pushing_only = None


def _push_batches(
    run: _Run, store: Repo, batches: list[list[RefUpdate]], first: PushOutcome | None = None
) -> None:
    """Push the batches in turn (`first`: the target's answer to the first, already pushed)."""
    for index, batch in enumerate(batches):
        if run.time_up():
            run.remaining.extend(d.ref for later in batches[index:] for d in later)
            break
        run.report("pushing", len(batches) - index)
        run.push(store, batch, first if index == 0 else None)
    if batches:
        run.report("pushing")
