"""dulwich's urllib3 smart-HTTP client, subclassed for a mirror service.

Byte counting, no redirects to unchecked hosts, a smart-HTTP check, reuse of the run's first
advertisement, and the one hand-built protocol request (`common_with`, a protocol-v2 negotiation round
without `done` that dulwich does not offer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dulwich.client
from dulwich.client import HTTPUnauthorized, Urllib3HttpGitClient, build_fetch_request_v2
from dulwich.errors import GitProtocolError, NotGitRepository
from dulwich.protocol import Protocol, pkt_line

from gitmirror.errors import ProtocolFailure
from gitmirror.mirror.refmaps import SharedListingBuilder
from gitmirror.mirror.transport.stats import TransferStats
from gitmirror.scrub import one_line, scrub

if TYPE_CHECKING:
    from gitmirror.mirror.transport.fetched_pack import FetchedPack, PackStream
    from gitmirror.mirror.transport.remote import Remote

USER_AGENT = "git/2.39.0 (gitmirror)"
# Over stateless HTTP dulwich stops offering haves after MAX_IN_VAIN of them (it cannot read ACKs while
# it writes the request). A mirror's haves are the target's tips its negotiation rounds found in common
# with the source (`remote._negotiated`), each standing for history that need not be sent: offer all.
dulwich.client.MAX_IN_VAIN = 1 << 30
# Caps on one ref listing (an `info/refs` advertisement or an `ls-refs` answer), enforced while it is
# read so that a flood is refused before it is parsed whole.
MAX_LISTING_BYTES = 64 * 1024 * 1024
MAX_REFS = 500_000
_READ_BLOCK = 64 * 1024


_LS_REFS = pkt_line(b"command=ls-refs\n")
_OBJECT_ID = re.compile(rb"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256, lower-case hex


def valid_object_id(raw: bytes, ref: bytes, where: str) -> str:
    if _OBJECT_ID.fullmatch(raw) is None:
        name = raw_ref_name(ref)
        raise ProtocolFailure(
            f"{where} advertised an invalid object id for {one_line(name, 200)!r}: "
            f"{one_line(raw.decode('ascii', 'backslashreplace'), 80)!r} is not a hexadecimal SHA"
        )
    return raw.decode("ascii")


def raw_ref_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class V2Listing:
    """A protocol-v2 `ls-refs` answer parsed line by line into str maps, as the engine uses them.

    dulwich would first build a map of bytes (what it read) that the caller then converts: two copies
    of a listing that may hold 500,000 refs. Lines are `oid name [symref-target:T] [peeled:P]`.
    `like`, when given, is called once the answer arrives for the other side's refs (None: none): an
    answer in the same (ascending) order is then held as its differences from them (`refmaps`).
    """

    def __init__(self, where: str, like: Callable[[], Mapping[str, str] | None] | None = None) -> None:
        self.where = where
        self.refs: Mapping[str, str] = {}  # unborn refs and symbolic refs (but HEAD) are left out
        self.symrefs: dict[str, str] = {}
        self.peeled: dict[str, str] = {}
        self.ascending = True  # whether the refs came in ascending name order (git sorts them)
        self._like = like

    def read(self, proto: Protocol) -> None:
        base = self._like() if self._like is not None else None
        shared = SharedListingBuilder(base) if isinstance(base, dict) and base else None
        refs: dict[str, str] = {}
        add = shared.add if shared is not None else refs.__setitem__
        count = 0
        last = ""
        for pkt in proto.read_pkt_seq():
            parts = pkt.rstrip(b"\n").split(b" ")
            if parts[0] == b"ERR":
                raise GitProtocolError(b" ".join(parts[1:]).decode("utf-8", "replace"))
            if len(parts) < 2:
                raise ProtocolFailure(f"{self.where} sent a malformed ref listing line")
            name = raw_ref_name(parts[1])
            for attribute in parts[2:]:
                if attribute.startswith(b"symref-target:"):
                    self.symrefs[name] = raw_ref_name(attribute[14:])
                elif attribute.startswith(b"peeled:"):
                    self.peeled[name] = valid_object_id(attribute[7:], parts[1], self.where)
            if parts[0] == b"unborn" or (name in self.symrefs and name != "HEAD"):
                continue
            add(name, valid_object_id(parts[0], parts[1], self.where))
            if name <= last:
                self.ascending = False
            last = name
            count += 1
            if count > MAX_REFS:
                raise ProtocolFailure(f"{self.where} advertised more than {MAX_REFS:,} refs")
        self.refs = shared.result() if shared is not None else refs


def _flush_only() -> Callable[[int], bytes]:
    rest = bytearray(b"0000")

    def read(n: int) -> bytes:
        out = bytes(rest[:n])
        del rest[:n]
        return out

    return read


def advertised_refs_among(read: Callable[[int], bytes], names: Container[str]) -> Callable[[int], bytes]:
    """A receive-pack advertisement (pkt-lines `oid name`) as dulwich reads it, less the refs not in
    `names`: dulwich holds what it reads in several copies, and only the refs pushed are looked at.
    The first line (the capabilities), the service line, an `ERR` line and `.have` lines are kept."""
    out = bytearray()
    first = True
    intact = True  # False once the framing is broken: passed through for dulwich to report

    def next_line() -> bool:
        nonlocal first, intact
        head = read(4)
        if not intact or len(head) < 4:
            out.extend(head)
            return bool(head)
        try:
            length = int(head, 16)
        except ValueError:
            intact = False
            out.extend(head)
            return True
        if length < 4:
            out.extend(head)
            return True
        payload = read(length - 4)
        line = payload.rstrip(b"\n")
        kept = first or line.startswith((b"# service=", b"ERR ")) or b"\0" in line
        if not kept:
            name = line.split(b" ", 1)[-1]
            kept = name == b".have" or raw_ref_name(name) in names
        if not line.startswith(b"# service="):
            first = False
        if kept:
            out.extend(head + payload)
        return True

    def filtered(n: int) -> bytes:
        while len(out) < n and next_line():
            pass
        data = bytes(out[:n])
        del out[:n]
        return data

    return filtered


class ListingGuard:
    """Counts a listing's bytes and pkt-lines as they arrive (pkt-lines are at most 65,535 bytes by
    their 4-hex-digit length, so the line count bounds what one line can add)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.size = 0
        self.lines = 0
        self._left = 0  # payload bytes of the current pkt-line still to come
        self._length = b""  # a length prefix split across reads
        self._framed = True  # False once the framing is broken: dulwich reports that itself

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > MAX_LISTING_BYTES:
            raise ProtocolFailure(
                f"{self.where} sent a ref listing larger than {MAX_LISTING_BYTES / (1024 * 1024):g} MiB"
            )
        pos = 0
        while self._framed and pos < len(chunk):
            if self._left:
                step = min(self._left, len(chunk) - pos)
                self._left -= step
                pos += step
                continue
            take = 4 - len(self._length)
            self._length += chunk[pos : pos + take]
            pos += take
            if len(self._length) < 4:
                break
            try:
                length = int(self._length, 16)
            except ValueError:
                self._framed = False
                break
            self._length = b""
            if length >= 4:
                self._left = length - 4
                self.lines += 1
                # a v0 advertisement gives a peeled tag a line of its own: twice the refs at most
                if self.lines > 2 * MAX_REFS + 64:
                    raise ProtocolFailure(f"{self.where} advertised more than {MAX_REFS:,} refs")


@dataclass
class Discovery:
    """What a remote's first upload-pack advertisement said, for the later requests of the same run.

    A fetch or a negotiation needs the server's capabilities, not its refs (they were listed already),
    so they skip the `info/refs` request and protocol v2's `ls-refs` that dulwich would repeat.
    """

    capabilities: set[bytes]
    url: str
    protocol_version: int


def with_fetch_argument(body: bytes, argument: bytes) -> bytes:
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


class MirrorHttpClient(Urllib3HttpGitClient):
    """dulwich's urllib3 client with byte counting, no redirects and a smart-HTTP check."""

    def __init__(self, base_url: str, stats: TransferStats, owner: Remote, **kwargs: Any) -> None:
        self._stats = stats
        self._owner = owner
        self.raw_pack: FetchedPack | PackStream | None = None
        # set to read a protocol-v2 `ls-refs` answer straight into the engine's form (see V2Listing)
        self.listing: V2Listing | None = None
        # set for operations that need the capabilities only: reuse the run's first advertisement
        self.reuse_discovery = False
        super().__init__(base_url, **kwargs)

    def common_with(self, path: bytes, wants: list[bytes], haves: list[bytes]) -> set[bytes] | None:
        """Which `haves` the server has: one protocol-v2 negotiation round without `done`.

        None when the server does not speak protocol v2."""
        answer = self.negotiate(path, wants, haves)
        return None if answer is None else answer[0]

    def negotiate(
        self, path: bytes, wants: list[bytes], haves: list[bytes]
    ) -> tuple[set[bytes], bool] | None:
        """One protocol-v2 negotiation round without `done`: the `haves` the server has, and whether it
        is ready (it found enough in common to send a pack for every want). When it is, it would go on
        with a pack, which is not read. None when the server does not speak protocol v2."""
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
            ready = False
            while (pkt := proto.read_pkt_line()) is not None:  # up to the flush (or the delimiter)
                line = pkt.rstrip(b"\n")
                if line.startswith(b"ACK "):
                    common.add(line[4:])
                elif line == b"ready":
                    ready = True
            return common, ready
        finally:
            resp.close()

    def _smart_request(self, service: str, url: str, data: bytes | Iterator[bytes] | None) -> Any:
        # protocol v2 fetches: ask for offset deltas (dulwich asks only under v0/v1)
        if service == "git-upload-pack" and isinstance(data, bytes):
            data = with_fetch_argument(data, b"ofs-delta\n")
        if service == "git-receive-pack" and self.raw_pack is not None and data is not None:
            if isinstance(data, bytes):
                data = iter([data])
            data = self._with_raw_pack(data)
        if self.listing is not None and isinstance(data, bytes) and data.startswith(_LS_REFS):
            resp, read = super()._smart_request(service, url, data)
            self.listing.read(Protocol(read, lambda _data: None))
            return resp, _flush_only()  # dulwich parses an empty listing: the refs are in `listing`
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
        if service == b"git-receive-pack":
            return self._receive_pack_advertisement(base_url, *args, **kwargs)
        known = self._owner.discovery if service == b"git-upload-pack" else None
        if known is not None and self.reuse_discovery:
            self.protocol_version = known.protocol_version
            self.dumb = False
            return {}, set(known.capabilities), known.url, {}, {}
        result = super()._discover_references(service, base_url, *args, **kwargs)
        if service == b"git-upload-pack":
            self._stats.upload_pack_capabilities = set(result[1])
            if known is None and not self.dumb:
                self._owner.discovery = Discovery(set(result[1]), result[2], self.protocol_version)
        return result

    def _receive_pack_advertisement(self, base_url: str, *args: Any, **kwargs: Any) -> Any:
        """receive-pack's refs and capabilities: read once per run, then what the run's pushes left.

        Each push is a stateless POST carrying its own old values, which receive-pack checks (a ref
        moved by someone else meanwhile is refused, as with a fresh advertisement): a later batch need
        not read the advertisement again (735 KB for 10,000 refs)."""
        known = self._owner.receive_advertisement
        if known is not None:
            self.dumb = False
            refs, capabilities, url = known
            # not copied (400,000 refs are 20 MiB a copy): dulwich reads old refs, `Remote._pushed`
            # updates them once the push is over
            return refs, set(capabilities), url, {}, {}
        result = super()._discover_references(b"git-receive-pack", base_url, *args, **kwargs)
        if not self.dumb:
            self._owner.receive_advertisement = (result[0], set(result[1]), result[2])
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

        listing = "/info/refs?service=" in url or (
            isinstance(data, bytes) and b"command=ls-refs" in data[:64]
        )
        guard = ListingGuard(scrub(url.split("/info/refs")[0])) if listing else None

        # dulwich reads each pkt-line in two small reads, and one urllib3 read costs tens of
        # microseconds: take what the connection has (read1) and serve the small reads from it
        read_some = getattr(resp, "read1", read)
        buffered = bytearray()

        def counting_read(n: int) -> bytes:
            while len(buffered) < n:
                chunk = read_some(max(_READ_BLOCK, n - len(buffered)))
                if not chunk:
                    break
                stats.received(len(chunk))
                if guard is not None:
                    guard.feed(chunk)
                buffered.extend(chunk)
            out = bytes(buffered[:n])
            del buffered[:n]
            return out

        if "/info/refs?service=git-receive-pack" in url and self._owner.pushing_only is not None:
            return resp, advertised_refs_among(counting_read, self._owner.pushing_only)
        return resp, counting_read
