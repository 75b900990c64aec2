"""The operations on one side of a mirror: list its refs, fetch from it, push to it.

Git protocol work is dulwich's (`fetch_pack`, `send_pack` with their callbacks, its listing), or git's
own between two local repositories (`local`). This module
adds what a mirror service needs around it: explicit credentials per operation, timeouts, the network
policy, and errors mapped to `gitmirror.errors`.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Callable, Container, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import urllib3
from dulwich.client import GitClient, LocalGitClient, SubprocessGitClient
from dulwich.errors import SendPackError
from dulwich.objects import ObjectID
from dulwich.pack import generate_unpacked_objects
from dulwich.refs import Ref
from dulwich.repo import Repo

from gitmirror.errors import ProtocolFailure, PushTooLarge, RepositoryNotFound, UsageError
from gitmirror.mirror.credentials import Anonymous, CredentialProvider
from gitmirror.mirror.transport.classify import mapped_errors
from gitmirror.mirror.transport.deadline import Deadline
from gitmirror.mirror.transport.http_client import (
    MAX_REFS,
    USER_AGENT,
    Discovery,
    MirrorHttpClient,
    V2Listing,
    raw_ref_name,
    valid_object_id,
)
from gitmirror.mirror.transport.stats import TransferStats
from gitmirror.mirror.urls import NetworkPolicy, RemoteURL, pinned_pool_manager
from gitmirror.scrub import one_line, scrub
from gitmirror.values import ZERO_SHA

# The fetch and push machinery (`fetched_pack`, `local`) loads with the first fetch or push: a listing,
# all a no-op run does, needs neither.
if TYPE_CHECKING:
    from gitmirror.mirror.transport.fetched_pack import FetchedPack, PackStream

_MAX_REMOTE_MESSAGES = 8192
# What a mirror reads of a listing: HEAD (the default branch), branches and tags.
LISTED_PREFIXES = [b"HEAD", b"refs/heads/", b"refs/tags/"]


# git's receive.maxInputSize ("pack exceeds maximum allowed size", also GitHub's words), and the
# HTTP answer of a proxy in front of the server
_TOO_LARGE = re.compile(r"exceeds maximum allowed size|answered HTTP 413", re.IGNORECASE)
# receive-pack's words for a command whose old value no longer holds (the ref moved, or appeared, on
# the target after the advertisement the push was planned on was read): "failed to update ref" as the
# ref's status, the reason in the side-band
_MOVED_MEANWHILE = re.compile(
    r"cannot lock ref '([^']+)': (?:is at [0-9a-f]{7,} but expected [0-9a-f]{7,}|reference already exists)"
)
_STALE = "stale info: the ref changed on the target during the sync"


def refused_as_too_large(*texts: str) -> None:
    """Raise PushTooLarge when what the target said means the push was over its size limit."""
    for text in texts:
        if _TOO_LARGE.search(text):
            raise PushTooLarge(
                f"the target refused the push as too large ({one_line(text, 200)}): "
                "set --max-push-bytes (the mirror's max_push_bytes) below the target's limit"
            )


def check_host(url: RemoteURL) -> None:
    """A host name IDNA rejects (`a..b`, a label over 63 characters) is an error before any connection."""
    if url.is_local:
        return
    try:
        url.host.encode("idna")
    except UnicodeError as exc:
        raise UsageError(
            f"{url.url} has an invalid host name ({one_line(exc, 120)}): check the URL"
        ) from None


class _OfferHaves:
    """A graph walker that offers given tips as `have`s without walking history (we hold none of it).

    The source leaves out everything reachable from the tips it recognises. Over stateless HTTP dulwich
    sends every have and `done` at once, so ACKs carry no information here (see `common_with`).
    """

    def __init__(self, haves: list[bytes]) -> None:
        self._haves = iter(haves)
        self.shallow: set[bytes] = set()

    def __next__(self) -> bytes | None:
        return next(self._haves, None)

    next = __next__

    def ack(self, sha: bytes) -> None:
        return None

    def nak(self) -> None:
        return None


# Haves offered per negotiation round: dulwich's own per-request limit (MAX_IN_VAIN) over stateless HTTP.
HAVES_PER_ROUND = 256


def _negotiated(
    client: MirrorHttpClient, path: bytes, wants: list[ObjectID], haves: Iterable[str]
) -> list[bytes]:
    """The haves the source has, found in protocol-v2 negotiation rounds of HAVES_PER_ROUND each (those
    found common so far are repeated: the server keeps no state between requests) until the server is
    ready or every have was offered, as git does. A server without v2 gets the first round's haves.
    Read a round at a time: a target may have 500,000 tips, and the first rounds usually do."""
    common: list[bytes] = []
    for batch in itertools.batched(haves, HAVES_PER_ROUND):
        offered = [h.encode("ascii") for h in batch]
        answer = client.negotiate(path, list(wants), common + offered)
        if answer is None:
            return offered
        found, ready = answer
        common += [h for h in offered if h in found]
        if ready:
            break
    return common


@dataclass
class RefListing:
    # a dict, or (the target's, see `list_refs`'s `like`) a `refmaps.ListingDelta` of the source's
    refs: Mapping[str, str]
    head: str | None  # full ref name HEAD points to, when advertised
    symrefs: dict[str, str] = field(default_factory=dict)  # symbolic ref -> its target (not in `refs`)
    peeled: dict[str, str] = field(default_factory=dict)  # annotated tag ref -> the object it peels to
    ascending: bool = False  # the refs came in ascending name order: another listing may share them


class ThinPackRefused(ProtocolFailure):
    """The pass-through pack is thin and the target needs it re-packed: fetch it whole and push again."""


@dataclass(frozen=True)
class PushOutcome:
    """Per-ref status of one push: None = applied, else the server's reason."""

    status: dict[str, str | None]
    remote_messages: str


class Remote:
    """One side of a mirror: a URL, how to authenticate, and dulwich clients built per operation."""

    def __init__(
        self,
        url: RemoteURL,
        credentials: CredentialProvider | None = None,
        *,
        connect_timeout: float = 15.0,
        read_timeout: float = 120.0,
        policy: NetworkPolicy | None = None,
        lfs_credentials: CredentialProvider | None = None,
    ) -> None:
        self.url = url
        self.credentials = credentials or Anonymous()
        # the LFS server's, when they differ from the repository's (some hosts)
        self.lfs_credentials = lfs_credentials or self.credentials
        self.stats = TransferStats()
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._policy = policy
        self._messages = bytearray()
        self.discovery: Discovery | None = None
        # receive-pack's advertisement as this run's pushes left it: refs, capabilities, URL
        self.receive_advertisement: tuple[dict[bytes, bytes], set[bytes], str] | None = None
        self._advertisement_ahead: futures.Future[None] | None = None  # being read for the next push
        self.deadline: Deadline | None = None  # the run's, set by the engine for the run's duration
        # set by the engine while its pushes carry their own pack (no haves needed): receive-pack's
        # advertisement is then kept for these refs only (a target may list 500,000)
        self.pushing_only: Container[str] | None = None
        # set by the engine while both sides are listed: the source's refs, for the target's to share
        self.listing_like: Callable[[], Mapping[str, str] | None] | None = None

    def __repr__(self) -> str:
        return f"Remote({self.url.url!r})"

    @property
    def policy(self) -> NetworkPolicy | None:
        return self._policy

    # --- clients -----------------------------------------------------------------------------------

    def _client(self, *, thin: bool = False) -> tuple[GitClient, bytes]:
        check_host(self.url)
        address = self._policy.check_url(self.url) if self._policy is not None else None
        if self.url.is_local:
            assert self.url.local_path is not None
            client: GitClient
            if shutil.which("git-upload-pack") or shutil.which("git"):
                client = SubprocessGitClient()
            else:
                client = LocalGitClient()
            if not os.path.isdir(self.url.local_path):
                raise RepositoryNotFound(f"repository not found: {self.url.local_path} does not exist")
            return client, self.url.local_path.encode()
        timeout = self._timeout
        if self.deadline is not None:
            self.deadline.check(scrub(self.url.url))
            left = max(0.1, self.deadline.remaining())
            timeout = urllib3.Timeout(
                connect=min(left, self._timeout.connect_timeout or left),
                read=min(left, self._timeout.read_timeout or left),
            )
        creds = self.credentials.credentials_for(self.url)
        pool = pinned_pool_manager(
            self.url,
            address,
            headers={"User-Agent": USER_AGENT},
            timeout=timeout,
            retries=urllib3.Retry(total=2, connect=2, read=0, redirect=0, raise_on_redirect=False),
        )
        if self.deadline is not None:
            pool.pool_classes_by_scheme = self.deadline.pool_classes()
        http = MirrorHttpClient(
            self.url.url,
            self.stats,
            self,
            pool_manager=pool,
            username=creds.username if creds else None,
            password=creds.password if creds else None,
            dumb=False,
            thin_packs=thin,
        )
        return http, self.url.path.encode()

    def _progress(self, data: bytes) -> None:
        self._messages.extend(data)
        if len(self._messages) > _MAX_REMOTE_MESSAGES:
            del self._messages[: len(self._messages) - _MAX_REMOTE_MESSAGES]

    def remote_messages(self) -> str:
        """The server's recent `remote:` messages (hooks explain rejections there), scrubbed."""
        text = self._messages.decode("utf-8", "replace").replace("\r", "\n")
        lines = [one_line(line) for line in text.split("\n") if line.strip()]
        # Drop git's own progress meters; keep what a hook or the server said.
        lines = [
            line
            for line in lines
            if not re.match(
                r"^(Counting|Compressing|Writing|Total|Enumerating|Delta|Resolving|Unpacking)\b", line
            )
        ]
        return scrub("\n".join(lines[-20:]))

    # --- operations --------------------------------------------------------------------------------

    def list_refs(self) -> RefListing:
        """The remote's branches and tags (and HEAD), as `git ls-remote --symref` lists them: upload-pack's
        protocol-v2 `ls-refs` with `symrefs` and `peel`. Symbolic refs are left out of `refs` (they are
        never mirrored; pushing to one writes its referent) and reported in `symrefs`. Under protocol v0
        only HEAD's target is advertised, so a symbolic branch or tag there looks like a real one.

        `listing_like` (when set): called once a protocol-v2 answer arrives (it may wait), for refs this
        listing probably mostly equals (the other side's, listed in ascending order): equal entries are
        then shared (see `refmaps`)."""
        client, path = self._client()
        where = scrub(self.url.url)
        with mapped_errors(self):
            if isinstance(client, MirrorHttpClient):
                client.listing = V2Listing(where, self.listing_like)
                raw, _caps, _url, raw_symrefs, raw_peeled = client._discover_references(
                    b"git-upload-pack", client._get_url(path), ref_prefix=LISTED_PREFIXES
                )
                if client.protocol_version == 2:
                    v2 = client.listing
                    return RefListing(v2.refs, v2.symrefs.get("HEAD"), v2.symrefs, v2.peeled, v2.ascending)
            else:
                # read from the repository itself: dulwich's `git upload-pack` subprocess speaks v0 only
                result = LocalGitClient().get_refs(path)
                raw, raw_symrefs, raw_peeled = result.refs, result.symrefs, {}
        if len(raw) > MAX_REFS:
            raise ProtocolFailure(f"{where} advertised {len(raw):,} refs; at most {MAX_REFS:,} are supported")
        symrefs = {raw_ref_name(k): raw_ref_name(v) for k, v in raw_symrefs.items()}
        refs: dict[str, str] = {}
        while raw:  # emptied as it is converted: a large listing is not held twice
            k, v = raw.popitem()
            name = raw_ref_name(k)
            if v is None or v == ZERO_SHA.encode() or (name in symrefs and name != "HEAD"):
                continue
            if name == "HEAD" or name.startswith("refs/"):
                refs[name] = valid_object_id(v, k, where)
        peeled = {
            raw_ref_name(k): valid_object_id(v, k, where)
            for k, v in raw_peeled.items()
            if raw_ref_name(k) in refs
        }
        return RefListing(refs=refs, head=symrefs.get("HEAD"), symrefs=symrefs, peeled=peeled)

    def supports_filter(self) -> bool | None:
        """Whether the source advertised protocol v2 `fetch=... filter` (None before any listing)."""
        caps = self.stats.upload_pack_capabilities
        if not caps:
            return None
        return any(c.startswith(b"fetch=") and b"filter" in c.split(b"=", 1)[1].split() for c in caps)

    def known_objects(self, wants: list[str], candidates: list[str]) -> set[str] | None:
        """Which of `candidates` (the target's tips) the source has, or None when it cannot tell."""
        if not candidates or not wants:
            return set()
        client, path = self._client()
        if not isinstance(client, MirrorHttpClient):
            return None
        client.reuse_discovery = True
        with mapped_errors(self):
            common = client.common_with(
                path, [w.encode("ascii") for w in wants[:1]], [c.encode("ascii") for c in candidates]
            )
        return None if common is None else {c.decode("ascii") for c in common}

    def fetch_pack_file(
        self,
        repo: Repo,
        wants: set[str],
        haves: Iterable[str],
        *,
        filter_spec: bytes | None = None,
        limit: int | None = None,
        measure_beyond: bool = False,
        into: FetchedPack | None = None,
        thin: bool = False,
    ) -> FetchedPack:
        """Download the pack for `wants` minus what `haves` reach, into `repo`'s pack directory, unindexed.

        Not thin unless `thin` (then a delta may have its base in what `haves` reach, left out: only the
        target can complete such a pack). It goes straight to disk, so memory stays bounded whatever the
        repository's size. Offset deltas are asked for: smaller packs, and the
        delta's commits can be read without indexing (a target without them gets a re-pack, see `push`).
        `limit` and `measure_beyond`: see `FetchedPack` (for a pack made here). `into`: a FetchedPack
        made in advance (a reader may follow the download).
        """
        from gitmirror.mirror.transport.fetched_pack import FetchedPack

        fetched = into or FetchedPack(repo, limit, measure_beyond=measure_beyond)
        fetched.thin = thin
        want_ids = [ObjectID(w.encode("ascii")) for w in sorted(wants)]

        def determine_wants(refs: Mapping[Ref, ObjectID | None], depth: int | None = None) -> list[ObjectID]:
            return want_ids

        offered: list[bytes]
        try:
            if want_ids:
                client, path = self._client(thin=thin)
                if isinstance(client, MirrorHttpClient):
                    client.reuse_discovery = True
                with mapped_errors(self):
                    listed = iter(haves)
                    head = list(itertools.islice(listed, HAVES_PER_ROUND + 1))
                    if isinstance(client, MirrorHttpClient) and len(head) > HAVES_PER_ROUND:
                        offered = _negotiated(client, path, want_ids, itertools.chain(head, listed))
                    else:
                        offered = [h.encode("ascii") for h in itertools.chain(head, listed)]
                    walker = _OfferHaves(offered)
                    client.fetch_pack(
                        path,
                        determine_wants,
                        walker,  # type: ignore[arg-type]
                        fetched.write,
                        progress=self._progress,
                        filter_spec=filter_spec,
                        # the refs were listed already: have protocol v2's ls-refs send only HEAD
                        ref_prefix=[b"HEAD"],
                    )
                    fetched.finish()
            else:
                fetched.finish()
        except BaseException:
            fetched.discard()
            raise
        return fetched

    def can_push_locally_from(self, source: Remote) -> bool:
        """Both repositories on this machine, and git here to move the objects between them."""
        from gitmirror.mirror.transport.local import git_available

        return self.url.is_local and source.url.is_local and git_available()

    def push_from_local(
        self, source_path: str, updates: Mapping[str, tuple[str | None, str | None]]
    ) -> PushOutcome:
        """Like `push`, into a local target from a local repository: git pushes from one to the other."""
        from gitmirror.mirror.transport.local import push_between

        assert self.url.local_path is not None
        if self._policy is not None:
            self._policy.check_url(self.url)
        result = push_between(source_path, self.url.local_path, updates, self.deadline)
        self._messages = bytearray(result.remote_messages)
        status = {ref: scrub(reason) if reason else None for ref, reason in result.status.items()}
        return PushOutcome(status=status, remote_messages=self.remote_messages())

    def read_receive_advertisement_ahead(self, pool: futures.Executor) -> None:
        """Start reading receive-pack's advertisement, the first push's round trip, in `pool` while the
        run does something else (downloads the pack); the next push waits for it and uses it. Kept
        whole (it is read before the plan names the refs to push): for targets of modest listings.
        Its failure is that push's, as if the push had read the advertisement itself."""
        known = self.receive_advertisement is not None or self._advertisement_ahead is not None
        if self.url.is_local or known:
            return
        self._advertisement_ahead = pool.submit(self._read_receive_advertisement)

    def forget_receive_advertisement(self) -> None:
        """A new run reads the target afresh."""
        ahead, self._advertisement_ahead = self._advertisement_ahead, None
        if ahead is not None:
            futures.wait([ahead])
        self.receive_advertisement = None

    def _read_receive_advertisement(self) -> None:
        client, path = self._client()
        if isinstance(client, MirrorHttpClient):
            with mapped_errors(self):
                client._discover_references(b"git-receive-pack", client._get_url(path))

    def _receive_advertisement_read(self) -> None:
        """Wait for an advertisement being read ahead; raises what reading it raised."""
        ahead, self._advertisement_ahead = self._advertisement_ahead, None
        if ahead is not None:
            ahead.result()

    def push(
        self,
        repo: Repo,
        updates: Mapping[str, tuple[str | None, str | None]],
        *,
        fetched: FetchedPack | PackStream | None = None,
        send_objects: bool = True,
    ) -> PushOutcome:
        """Push ref updates {ref: (expected old, new or None to delete)} with their objects.

        With `fetched` (pass-through) the objects are that pack, sent as it is (or re-packed from the
        indexed store on local transports), or none at all when `send_objects` is False because an
        earlier push of this run already delivered them. Without it, the pack is what `repo` has that
        the target's advertisement says it lacks.

        Like `git push --force-with-lease`: a ref whose current value on the server is not the expected
        old value is not pushed and is reported as stale, so a concurrent change is never overwritten.
        """
        from gitmirror.mirror.transport.local import git_available, index_with_git

        if fetched is not None and self.url.is_local and git_available():
            # a local target: git indexes the pack (in C, streaming) and pushes it across
            assert self.url.local_path is not None
            if send_objects and not fetched.empty:
                index_with_git(fetched, self.url.local_path, self.deadline)
            return self.push_from_local(fetched.repo.path, updates)
        stale: dict[str, str | None] = {}
        self._messages.clear()

        def update_refs(current: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            changes: dict[Ref, ObjectID] = {}
            for ref, (old, new) in updates.items():
                key = Ref(ref.encode("utf-8", "surrogateescape"))
                now = current.get(key)
                now_str = now.decode("ascii") if now is not None and now != ZERO_SHA.encode() else None
                if now_str != old:
                    stale[ref] = _STALE
                    continue
                changes[key] = ObjectID((new or ZERO_SHA).encode("ascii"))
            return changes

        client, path = self._client()
        pack = "walk"
        if fetched is not None:
            if not send_objects or fetched.empty:
                pack = "none"
            elif isinstance(client, MirrorHttpClient):
                client.raw_pack = fetched
                pack = "raw"
            else:
                fetched.index()  # local transports: re-pack from the indexed store instead
                pack = "all"

        def generate_pack_data(have: Any, want: Any, *, ofs_delta: bool = True, progress: Any = None) -> Any:
            nonlocal pack
            if pack == "raw" and not ofs_delta and fetched is not None and fetched.thin:
                # a thin pack cannot be re-packed here (its bases are on the target only)
                raise ThinPackRefused("the target takes no offset deltas: a thin pack cannot be re-packed")
            if pack == "raw" and not ofs_delta and isinstance(client, MirrorHttpClient):
                # a receive-pack that did not advertise offset deltas: re-pack them as ref deltas
                assert fetched is not None
                client.raw_pack = None
                fetched.index()
                pack = "all"
            if pack in ("none", "raw"):
                return 0, iter(())  # "raw": replaced by the fetched pack on the wire
            if pack == "all":
                oids = [(ObjectID(o), None) for o in repo.object_store]
                return len(oids), generate_unpacked_objects(
                    repo.object_store, oids, ofs_delta=ofs_delta, progress=progress
                )
            # Offer only what this store can use as a base; the target's other tips are unknown here.
            usable = [h for h in have if h in repo.object_store]
            return repo.object_store.generate_pack_data(usable, want, progress=progress, ofs_delta=ofs_delta)

        try:
            with mapped_errors(self):
                try:
                    self._receive_advertisement_read()
                    result = client.send_pack(path, update_refs, generate_pack_data, progress=self._progress)
                except SendPackError as exc:
                    refused_as_too_large(self.remote_messages(), str(exc))
                    raise ProtocolFailure(f"the target refused the pack: {exc}") from None
        except PushTooLarge:
            self.receive_advertisement = None
            raise
        except ProtocolFailure as exc:  # e.g. a proxy's HTTP 413
            self.receive_advertisement = None
            refused_as_too_large(str(exc))
            raise
        except BaseException:
            self.receive_advertisement = None  # what the target holds now is not known: read it again
            raise
        status: dict[str, str | None] = dict(stale)
        messages = self.remote_messages()
        moved = {m.group(1) for m in _MOVED_MEANWHILE.finditer(messages)}
        for ref in updates:
            if ref in stale:
                continue
            key = ref.encode("utf-8", "surrogateescape")
            reason = (result.ref_status or {}).get(key)
            if reason and ref in moved:
                reason = f"{_STALE} ({reason})"  # as when the advertisement shows the move
            status[ref] = scrub(reason) if reason else None
        self._pushed(updates, status)
        if any(status.values()):
            refused_as_too_large(messages, *(r for r in status.values() if r))
        return PushOutcome(status=status, remote_messages=messages)

    def _pushed(
        self, updates: Mapping[str, tuple[str | None, str | None]], status: dict[str, str | None]
    ) -> None:
        """Bring the kept receive-pack advertisement up to date with a push's applied updates; after a
        refusal (a hook, a stale ref) it is dropped and the next push reads the target again."""
        advertisement = self.receive_advertisement
        if advertisement is None:
            return
        if any(status.values()):
            self.receive_advertisement = None
            return
        refs = advertisement[0]
        for ref, (_old, new) in updates.items():
            key = ref.encode("utf-8", "surrogateescape")
            if new is None or self.pushing_only is not None:
                # a plan pushes each of its refs once: an applied one is not looked up again (400,000
                # created refs would otherwise pile up here)
                refs.pop(key, None)
            else:
                refs[key] = new.encode("ascii")
