"""Moving bytes: ref listings, fetches and pushes through dulwich's clients.

Git protocol work is dulwich's (`get_refs`, `fetch_pack`, `send_pack` with their callbacks); the one
exception is `common_with`, a protocol-v2 negotiation round without `done` that dulwich does not offer.
This module adds what a mirror service needs around it: explicit credentials per operation, timeouts, no redirects
to unchecked hosts, byte accounting, a smart-HTTP check, and errors mapped to `gitmirror.errors`.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import urllib3
from dulwich.client import (
    GitClient,
    HTTPUnauthorized,
    LocalGitClient,
    SubprocessGitClient,
    Urllib3HttpGitClient,
    build_fetch_request_v2,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository, SendPackError
from dulwich.objects import ObjectID
from dulwich.pack import generate_unpacked_objects
from dulwich.protocol import Protocol, pkt_line
from dulwich.refs import Ref
from dulwich.repo import Repo

from gitmirror.errors import AuthError, MirrorError, ProtocolFailure, RepositoryNotFound, TransientError
from gitmirror.mirror.credentials import Anonymous, CredentialProvider
from gitmirror.mirror.urls import NetworkPolicy, RemoteURL
from gitmirror.scrub import scrub
from gitmirror.values import ZERO_SHA

USER_AGENT = "git/2.39.0 (gitmirror)"
_STATUS = re.compile(r"unexpected http resp (\d{3})")
_MAX_REMOTE_MESSAGES = 8192
_RAW_CHUNK = 1024 * 1024


@dataclass
class TransferStats:
    """Bytes on the wire for one remote; requests may run in two threads at once (fetch, negotiation)."""

    bytes_received: int = 0
    bytes_sent: int = 0
    upload_pack_capabilities: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def sent(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def received(self, n: int) -> None:
        with self._lock:
            self.bytes_received += n


@dataclass
class _Discovery:
    """What a remote's first upload-pack advertisement said, for the later requests of the same run.

    A fetch or a negotiation needs the server's capabilities, not its refs (they were listed already),
    so they skip the `info/refs` request and protocol v2's `ls-refs` that dulwich would repeat.
    """

    capabilities: set[bytes]
    url: str
    protocol_version: int


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


@dataclass
class RefListing:
    refs: dict[str, str]
    head: str | None  # full ref name HEAD points to, when advertised
    symrefs: dict[str, str] = field(default_factory=dict)
    capabilities: frozenset[bytes] = frozenset()  # receive-pack's, for a listing made `for_push`


def _with_fetch_argument(body: bytes, argument: bytes) -> bytes:
    """Add an argument to a protocol-v2 `command=fetch` request (after its delimiter packet)."""
    if not body.startswith(pkt_line(b"command=fetch\n")):
        return body
    pos = 0
    while pos + 4 <= len(body):
        length = int(body[pos : pos + 4], 16)
        if length == 1:  # the delimiter: arguments follow
            return body[: pos + 4] + pkt_line(argument) + body[pos + 4 :]
        if length < 4:  # flush or response-end: no arguments section
            break
        pos += length
    return body


class FetchedPack:
    """The pack a source sent for this run, on disk in the scratch repository's pack directory.

    It is indexed (deltas resolved, objects readable) only when something must be read from it, for
    example an ancestry question; a cold mirror sends it on without ever indexing it.
    """

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.file, self._commit, self._abort = repo.object_store.add_pack()
        self.indexed = False
        self.size = 0
        self._indexed_path: str | None = None

    def finish(self) -> None:
        """Called once the download is complete."""
        self.file.flush()
        self.size = self.file.tell()

    @property
    def empty(self) -> bool:
        return self.size == 0

    def chunks(self, size: int = _RAW_CHUNK) -> Iterator[bytes]:
        """The pack's bytes as downloaded (positional reads: the writer's file offset is left alone)."""
        if self._indexed_path is not None:
            with open(self._indexed_path, "rb") as pack:
                while block := pack.read(size):
                    yield block
            return
        fd, offset = self.file.fileno(), 0
        while offset < self.size:
            block = os.pread(fd, min(size, self.size - offset), offset)
            if not block:
                raise ProtocolFailure("the fetched pack is shorter than what was downloaded")
            offset += len(block)
            yield block

    def index(self) -> Repo:
        if not self.indexed:
            self.indexed = True
            pack = self._commit()
            self._indexed_path = getattr(pack, "_data_path", None) if pack is not None else None
        return self.repo

    def discard(self) -> None:
        if not self.indexed:
            self.indexed = True
            self._abort()


@dataclass(frozen=True)
class PushOutcome:
    """Per-ref status of one push: None = applied, else the server's reason."""

    status: dict[str, str | None]
    remote_messages: str


class _MirrorHttpClient(Urllib3HttpGitClient):
    """dulwich's urllib3 client with byte counting, no redirects and a smart-HTTP check."""

    def __init__(self, base_url: str, stats: TransferStats, owner: Remote, **kwargs: Any) -> None:
        self._stats = stats
        self._owner = owner
        self.raw_pack: FetchedPack | None = None
        # set for operations that need the capabilities only: reuse the run's first advertisement
        self.reuse_discovery = False
        # protocol v2 fetches: ask for offset deltas (dulwich asks only under v0/v1). Smaller packs, and
        # the delta's commits can be read without indexing; off when the target could not take them.
        self.ofs_delta = True
        super().__init__(base_url, **kwargs)

    def common_with(self, path: bytes, wants: list[bytes], haves: list[bytes]) -> set[bytes] | None:
        """Which `haves` the server has: one protocol-v2 negotiation round without `done`.

        The server answers with its acknowledgments (and, when it is ready, would go on with a pack,
        which is not read). None when the server does not speak protocol v2.
        """
        url = self._get_url(path)
        _refs, _caps, url, _symrefs, _peeled = self._discover_references(
            b"git-upload-pack", url, protocol_version=2
        )
        if self.protocol_version != 2 or not wants:
            return None
        body = b"".join(pkt_line(p) for p in build_fetch_request_v2(None)) + b"0001"
        body += b"".join(pkt_line(b"want " + w + b"\n") for w in wants)
        body += b"".join(pkt_line(b"have " + h + b"\n") for h in haves)
        body += pkt_line(None)  # no "done": negotiation only
        resp, read = self._smart_request("git-upload-pack", url, body)
        try:
            proto = Protocol(read, lambda _data: None)
            first = proto.read_pkt_line()
            if first is None or first.rstrip(b"\n") != b"acknowledgments":
                return None
            common: set[bytes] = set()
            while (pkt := proto.read_pkt_line()) is not None:
                line = pkt.rstrip(b"\n")
                if line.startswith(b"ACK "):
                    common.add(line[4:])
            return common
        finally:
            resp.close()

    def _smart_request(self, service: str, url: str, data: bytes | Iterator[bytes] | None) -> Any:
        if service == "git-upload-pack" and self.ofs_delta and isinstance(data, bytes):
            data = _with_fetch_argument(data, b"ofs-delta\n")
        if service == "git-receive-pack" and self.raw_pack is not None and data is not None:
            if isinstance(data, bytes):
                data = iter([data])
            data = self._with_raw_pack(data)
        return super()._smart_request(service, url, data)

    def _with_raw_pack(self, data: Iterator[bytes]) -> Iterator[bytes]:
        """Pass-through: keep dulwich's ref-update commands, replace the (empty) pack it generated by
        the source's pack file, byte for byte. dulwich's pack starts with a chunk b"PACK"."""
        assert self.raw_pack is not None
        replaced = False
        for chunk in data:
            if replaced:
                continue  # the rest of dulwich's empty pack (count and checksum)
            if chunk == b"PACK":
                replaced = True
                yield from self.raw_pack.chunks()
                continue
            yield chunk

    def _discover_references(self, service: bytes, base_url: str, *args: Any, **kwargs: Any) -> Any:
        known = self._owner.discovery if service == b"git-upload-pack" else None
        if known is not None and self.reuse_discovery:
            self.protocol_version = known.protocol_version
            self.dumb = False
            return {}, set(known.capabilities), known.url, {}, {}
        result = super()._discover_references(service, base_url, *args, **kwargs)
        if service == b"git-upload-pack":
            self._stats.upload_pack_capabilities = set(result[1])
            if known is None and not self.dumb:
                self._owner.discovery = _Discovery(set(result[1]), result[2], self.protocol_version)
        return result

    def _http_request(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        data: bytes | Iterator[bytes] | None = None,
        raise_for_status: bool = True,
    ) -> tuple[Any, Callable[[int], bytes]]:
        stats = self._stats
        body: bytes | Iterator[bytes] | None = data
        if isinstance(data, bytes):
            stats.sent(len(data))
        elif data is not None:
            source = data

            def counting() -> Iterator[bytes]:
                for chunk in source:
                    stats.sent(len(chunk))
                    yield chunk

            body = counting()
        resp, read = super()._http_request(url, headers, body, raise_for_status=False)
        if 300 <= resp.status < 400:
            resp.close()
            location = scrub(resp.headers.get("Location", "?"))
            raise ProtocolFailure(
                f"the server redirected to {location}: configure the repository's final URL instead"
            )
        if raise_for_status and resp.status != 200:
            resp.close()
            if resp.status == 404:
                raise NotGitRepository(url)
            if resp.status == 401:
                raise HTTPUnauthorized(resp.headers.get("WWW-Authenticate"), url)
            raise GitProtocolError(f"unexpected http resp {resp.status} for {url}")
        if "/info/refs?service=" in url and resp.status == 200:
            content_type = resp.headers.get("Content-Type") or ""
            if not content_type.startswith("application/x-git-"):
                resp.close()
                raise ProtocolFailure(
                    f"{scrub(url.split('/info/refs')[0])} is not a git repository "
                    f"(the server answered {content_type or 'without a content type'}, not smart HTTP)"
                )

        def counting_read(n: int) -> bytes:
            chunk = read(n)
            stats.received(len(chunk))
            return chunk

        return resp, counting_read


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
    ) -> None:
        self.url = url
        self.credentials = credentials or Anonymous()
        self.stats = TransferStats()
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._policy = policy
        self._messages = bytearray()
        self.discovery: _Discovery | None = None

    def __repr__(self) -> str:
        return f"Remote({self.url.url!r})"

    # --- clients -----------------------------------------------------------------------------------

    def _client(self) -> tuple[GitClient, bytes]:
        if self._policy is not None:
            self._policy.check_url(self.url)
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
        creds = self.credentials.credentials_for(self.url)
        pool = urllib3.PoolManager(
            headers={"User-Agent": USER_AGENT},
            timeout=self._timeout,
            retries=urllib3.Retry(total=2, connect=2, read=0, redirect=0, raise_on_redirect=False),
        )
        http = _MirrorHttpClient(
            self.url.url,
            self.stats,
            self,
            pool_manager=pool,
            username=creds.username if creds else None,
            password=creds.password if creds else None,
            dumb=False,
            thin_packs=False,
        )
        return http, self.url.path.encode()

    def _progress(self, data: bytes) -> None:
        self._messages.extend(data)
        if len(self._messages) > _MAX_REMOTE_MESSAGES:
            del self._messages[: len(self._messages) - _MAX_REMOTE_MESSAGES]

    def remote_messages(self) -> str:
        """The server's recent `remote:` messages (hooks explain rejections there), scrubbed."""
        text = self._messages.decode("utf-8", "replace").replace("\r", "\n")
        lines = [line.strip() for line in text.split("\n") if line.strip()]
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

    def list_refs(self, *, for_push: bool = False) -> RefListing:
        """The remote's branches and tags (and HEAD). `for_push` reads receive-pack's advertisement, the
        one request a push makes anyway, instead of upload-pack's (two requests under protocol v2)."""
        client, path = self._client()
        with _mapped_errors(self):
            capabilities: set[bytes] = set()
            if for_push and isinstance(client, _MirrorHttpClient):
                raw, capabilities, _url, raw_symrefs, _peeled = client._discover_references(
                    b"git-receive-pack", client._get_url(path)
                )
            else:
                result = client.get_refs(path)
                raw, raw_symrefs = result.refs, result.symrefs
        refs = {
            k.decode("utf-8", "surrogateescape"): v.decode("ascii")
            for k, v in raw.items()
            if v is not None and v != ZERO_SHA.encode() and (k.startswith(b"refs/") or k == b"HEAD")
        }
        symrefs = {
            k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in raw_symrefs.items()
        }
        head = symrefs.get("HEAD")
        return RefListing(refs=refs, head=head, symrefs=symrefs, capabilities=frozenset(capabilities))

    def supports_filter(self) -> bool | None:
        """Whether the source advertised protocol v2 `fetch=... filter` (None before any listing)."""
        caps = self.stats.upload_pack_capabilities
        if not caps:
            return None
        return any(c.startswith(b"fetch=") and b"filter" in c.split(b"=", 1)[1].split() for c in caps)

    def fetch(self, repo: Repo, wants: set[str], *, filter_spec: bytes | None = None) -> None:
        """Fetch the objects for `wants` (and everything they reach) into `repo`, indexed and readable."""
        self.fetch_pack_file(repo, wants, [], filter_spec=filter_spec).index()

    def known_objects(self, wants: list[str], candidates: list[str]) -> set[str] | None:
        """Which of `candidates` (the target's tips) the source has, or None when it cannot tell."""
        if not candidates or not wants:
            return set()
        client, path = self._client()
        if not isinstance(client, _MirrorHttpClient):
            return None
        client.reuse_discovery = True
        with _mapped_errors(self):
            common = client.common_with(
                path, [w.encode("ascii") for w in wants[:1]], [c.encode("ascii") for c in candidates]
            )
        return None if common is None else {c.decode("ascii") for c in common}

    def fetch_pack_file(
        self,
        repo: Repo,
        wants: set[str],
        haves: list[str],
        *,
        filter_spec: bytes | None = None,
        ofs_delta: bool = True,
    ) -> FetchedPack:
        """Download the pack for `wants` minus what `haves` reach, into `repo`'s pack directory, unindexed.

        The pack is never thin (every delta base is inside it) and goes straight to disk, so memory stays
        bounded whatever the repository's size. `ofs_delta=False` when the pack is for a target that did
        not advertise offset deltas.
        """
        fetched = FetchedPack(repo)
        want_ids = [ObjectID(w.encode("ascii")) for w in sorted(wants)]

        def determine_wants(refs: Mapping[Ref, ObjectID | None], depth: int | None = None) -> list[ObjectID]:
            return want_ids

        walker = _OfferHaves([h.encode("ascii") for h in haves])
        try:
            if want_ids:
                client, path = self._client()
                if isinstance(client, _MirrorHttpClient):
                    client.reuse_discovery = True
                    client.ofs_delta = ofs_delta
                if not ofs_delta:
                    client._fetch_capabilities.discard(b"ofs-delta")  # protocol v0/v1
                with _mapped_errors(self):
                    client.fetch_pack(
                        path,
                        determine_wants,
                        walker,  # type: ignore[arg-type]
                        fetched.file.write,
                        progress=self._progress,
                        filter_spec=filter_spec,
                        # the refs were listed already: have protocol v2's ls-refs send only HEAD
                        ref_prefix=[b"HEAD"],
                    )
            fetched.finish()
        except BaseException:
            fetched.discard()
            raise
        return fetched

    def push(
        self,
        repo: Repo,
        updates: Mapping[str, tuple[str | None, str | None]],
        *,
        fetched: FetchedPack | None = None,
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
        stale: dict[str, str | None] = {}
        self._messages.clear()

        def update_refs(current: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            changes: dict[Ref, ObjectID] = {}
            for ref, (old, new) in updates.items():
                key = Ref(ref.encode("utf-8", "surrogateescape"))
                now = current.get(key)
                now_str = now.decode("ascii") if now is not None and now != ZERO_SHA.encode() else None
                if now_str != old:
                    stale[ref] = "stale info: the ref changed on the target during the sync"
                    continue
                changes[key] = ObjectID((new or ZERO_SHA).encode("ascii"))
            return changes

        client, path = self._client()
        pack = "walk"
        if fetched is not None:
            if not send_objects or fetched.empty:
                pack = "none"
            elif isinstance(client, _MirrorHttpClient):
                client.raw_pack = fetched
                pack = "raw"
            else:
                fetched.index()  # local transports: re-pack from the indexed store instead
                pack = "all"

        def generate_pack_data(have: Any, want: Any, *, ofs_delta: bool = True, progress: Any = None) -> Any:
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

        with _mapped_errors(self):
            try:
                result = client.send_pack(path, update_refs, generate_pack_data, progress=self._progress)
            except SendPackError as exc:
                raise ProtocolFailure(f"the target refused the pack: {exc}") from None
        status: dict[str, str | None] = dict(stale)
        for ref in updates:
            if ref in stale:
                continue
            key = ref.encode("utf-8", "surrogateescape")
            reason = (result.ref_status or {}).get(key)
            status[ref] = scrub(reason) if reason else None
        return PushOutcome(status=status, remote_messages=self.remote_messages())


class _mapped_errors:
    """Translate dulwich/urllib3 exceptions into gitmirror errors with scrubbed, actionable text."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, MirrorError) or not isinstance(exc, Exception):
            return
        raise classify_error(exc, self.remote.url.url) from None


def classify_error(exc: Exception, where: str) -> MirrorError:
    where = scrub(where)
    if isinstance(exc, HTTPUnauthorized):
        return AuthError(f"authentication failed for {where} (HTTP 401): check the token or credentials")
    if isinstance(exc, NotGitRepository):
        return RepositoryNotFound(
            f"repository not found at {where} (HTTP 404 or not a git repository): "
            "check the URL and that the credentials can see it"
        )
    if isinstance(exc, HangupException):
        return TransientError(f"the connection to {where} was closed unexpectedly")
    if isinstance(exc, GitProtocolError):
        cause = exc.__cause__
        if isinstance(cause, urllib3.exceptions.HTTPError) or isinstance(cause, OSError):
            return _network_error(cause, where)
        match = _STATUS.search(str(exc))
        if match:
            code = int(match.group(1))
            if code == 403:
                return AuthError(
                    f"access denied by {where} (HTTP 403): the credentials lack permission for this repository"
                )
            if code in (408, 429) or code >= 500:
                return TransientError(f"{where} answered HTTP {code}; will retry")
            return ProtocolFailure(f"{where} answered HTTP {code}")
        return ProtocolFailure(f"git protocol error with {where}: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return _network_error(exc, where)
    if isinstance(exc, AssertionError | ValueError | KeyError | IndexError):
        return ProtocolFailure(f"unexpected response from {where}: {type(exc).__name__}: {exc}")
    return TransientError(f"{type(exc).__name__} talking to {where}: {exc}")


def _network_error(exc: BaseException, where: str) -> TransientError:
    text = str(exc)
    if isinstance(exc, urllib3.exceptions.TimeoutError) or "timed out" in text.lower():
        return TransientError(f"timed out talking to {where}")
    if isinstance(exc, urllib3.exceptions.ProtocolError) or "Connection aborted" in text:
        return TransientError(f"the connection to {where} was closed unexpectedly")
    if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in text:
        return TransientError(f"cannot resolve the host of {where}")
    if "Connection refused" in text or "NewConnectionError" in text or "Max retries" in text:
        return TransientError(f"cannot connect to {where} (connection refused or unreachable)")
    return TransientError(f"network error talking to {where}: {type(exc).__name__}")
