"""Copy LFS objects from the source's LFS server to the target's, streamed and verified.

Per batch of pointers: ask the target which objects it lacks (upload batch), ask the source for those
(download batch), then copy several at a time. Each object flows from the download straight into the
upload, hashed on the way; the last chunk is held back until sha256 and size match, so a corrupt
object never completes on the target. The object is never held whole in memory nor written to disk.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field

from gitmirror.errors import MirrorError, ProtocolFailure, TransientError
from gitmirror.mirror.lfs.batch import BATCH_SIZE, LfsAction, LfsServer, LfsUnavailable, ObjectAnswer
from gitmirror.mirror.lfs.pointers import LfsPointer
from gitmirror.scrub import scrub

PARALLEL_TRANSFERS = 4
_CHUNK = 256 * 1024
_MAX_NAMED = 5  # object ids named in one message


class ObjectMissing(MirrorError):
    """The source's LFS server does not have the object (or has it with another size)."""

    kind = "lfs_missing"


class ObjectCorrupt(ProtocolFailure):
    """The bytes the source sent do not hash to the object's id or have another size."""


@dataclass
class CopyReport:
    """What a copy did: objects and bytes copied; the objects that could not be, by reason."""

    objects: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # oids the source lacks
    failed: dict[str, str] = field(default_factory=dict)  # oid -> reason, any other per-object failure
    target_unavailable: str | None = None  # why the target has no LFS server, when it has none
    not_mirrored: int = 0  # objects the target may lack, when nothing could be copied at all

    def error(self) -> str | None:
        """One message naming what was not mirrored, or None when everything was."""
        parts = []
        if self.target_unavailable is not None:
            parts.append(self.target_unavailable)
        if self.missing:
            ids = sorted(self.missing)
            named = ", ".join(ids[:_MAX_NAMED]) + (
                f" and {len(ids) - _MAX_NAMED} more" if len(ids) > _MAX_NAMED else ""
            )
            noun = "object" if len(ids) == 1 else "objects"
            parts.append(f"LFS {noun} {named} {'is' if len(ids) == 1 else 'are'} missing on the source")
        for oid, reason in sorted(self.failed.items())[:_MAX_NAMED]:
            parts.append(f"LFS object {oid} was not copied: {reason}")
        if len(self.failed) > _MAX_NAMED:
            parts.append(f"{len(self.failed) - _MAX_NAMED} more LFS objects were not copied")
        return scrub("; ".join(parts)) if parts else None


def _chunks_verified(
    stream: Iterator[bytes], pointer: LfsPointer, counted: Callable[[int], None]
) -> Iterator[bytes]:
    """The download's chunks, hashed; the last one is held back until the whole object checks out."""
    digest = hashlib.sha256()
    seen = 0
    held: bytes | None = None
    for chunk in stream:
        if not chunk:
            continue
        digest.update(chunk)
        seen += len(chunk)
        if seen > pointer.size:
            raise ObjectCorrupt(f"the source sent more than the object's {pointer.size} bytes")
        if held is not None:
            yield held
        held = chunk
        counted(len(chunk))
    if seen != pointer.size:
        raise ObjectCorrupt(f"the source sent {seen} of the object's {pointer.size} bytes")
    if digest.hexdigest() != pointer.oid:
        raise ObjectCorrupt("the source sent bytes whose sha256 is not the object's id")
    if held is not None:
        yield held


class LfsCopier:
    """Copies objects from `source` to `target`; `check_time` raises when the run must stop."""

    def __init__(
        self,
        source: LfsServer,
        target: LfsServer,
        *,
        check_time: Callable[[str], None] = lambda _what: None,
        batch_size: int = BATCH_SIZE,
        parallel: int = PARALLEL_TRANSFERS,
    ) -> None:
        self.source = source
        self.target = target
        self.check_time = check_time
        self.batch_size = batch_size
        self.parallel = parallel
        self._lock = threading.Lock()  # the report is written from the transfer threads

    def copy(self, pointers: Sequence[LfsPointer]) -> CopyReport:
        """Copy every object of `pointers` the target lacks. Raises TransientError or AuthError when the
        run should stop and be retried before its refs are pushed; per-object trouble is reported."""
        report = CopyReport()
        ordered = sorted(set(pointers))
        with futures.ThreadPoolExecutor(self.parallel, thread_name_prefix="gitmirror-lfs") as pool:
            for start in range(0, len(ordered), self.batch_size):
                self.check_time("copying LFS objects")
                batch = ordered[start : start + self.batch_size]
                try:
                    uploads = self.target.batch("upload", batch)
                except LfsUnavailable as exc:
                    report.target_unavailable = (
                        f"the target has no Git LFS server ({exc.message}); "
                        f"{len(ordered) - start} objects were not mirrored"
                    )
                    report.not_mirrored = len(ordered) - start
                    return report
                needed = self._needed(batch, uploads, report)
                if not needed:
                    continue
                downloads = self._downloads(needed, report)
                jobs = [
                    pool.submit(self._copy_object, uploads[p], downloads[p], report)
                    for p in needed
                    if p in downloads
                ]
                for job in futures.as_completed(jobs):
                    job.result()  # a transient or auth failure ends the copy: the run is retried
        return report

    def _needed(
        self, batch: list[LfsPointer], uploads: dict[LfsPointer, ObjectAnswer], report: CopyReport
    ) -> list[LfsPointer]:
        needed = []
        for pointer in batch:
            answer = uploads.get(pointer)
            if answer is None:
                report.failed[pointer.oid] = "the target's LFS server did not answer for it"
            elif answer.error_code is not None:
                report.failed[pointer.oid] = (
                    f"the target refused it ({answer.error_code} {answer.error_message})".strip()
                )
            elif "upload" in answer.actions:
                needed.append(pointer)
        return needed

    def _downloads(self, needed: list[LfsPointer], report: CopyReport) -> dict[LfsPointer, ObjectAnswer]:
        try:
            answers = self.source.batch("download", needed)
        except LfsUnavailable:
            # giftless, like some other servers, answers 404 when it has none of the objects asked for
            report.missing.extend(p.oid for p in needed)
            return {}
        found = {}
        for pointer in needed:
            answer = answers.get(pointer)
            if answer is None or answer.error_code in (404, 410, 422):
                report.missing.append(pointer.oid)
            elif answer.error_code is not None:
                report.failed[pointer.oid] = (
                    f"the source refused it ({answer.error_code} {answer.error_message})".strip()
                )
            elif "download" not in answer.actions:
                report.failed[pointer.oid] = "the source's LFS server gave no download link"
            else:
                found[pointer] = answer
        return found

    def _fresh(self, server: LfsServer, operation: str, answer: ObjectAnswer, name: str) -> LfsAction | None:
        action = answer.actions.get(name)
        if action is not None and action.expiring():
            renewed = server.batch(operation, [answer.pointer]).get(answer.pointer)
            action = renewed.actions.get(name) if renewed is not None else None
        return action

    def _copy_object(self, upload: ObjectAnswer, download: ObjectAnswer, report: CopyReport) -> None:
        pointer = upload.pointer
        for attempt in range(2):
            try:
                copied = self._transfer(upload, download)
            except ObjectMissing:
                with self._lock:
                    report.missing.append(pointer.oid)
                return
            except TransientError:
                if attempt == 0:
                    continue  # once more, streamed again from the source (nothing was kept on disk)
                raise
            except ProtocolFailure as exc:  # a corrupt object included
                with self._lock:
                    report.failed[pointer.oid] = exc.message
                return
            with self._lock:
                report.objects += 1
                report.bytes += copied
            return

    def _transfer(self, upload: ObjectAnswer, download: ObjectAnswer) -> int:
        pointer = upload.pointer
        get = self._fresh(self.source, "download", download, "download")
        put = self._fresh(self.target, "upload", upload, "upload")
        if get is None:
            raise ObjectMissing(pointer.oid)
        if put is None:
            return 0  # the target has it by now
        resp, stream = self.source.stream(get, _CHUNK)
        try:
            if resp.status in (404, 410):
                raise ObjectMissing(pointer.oid)
            _raise_for(resp.status, "the source's LFS download", get.href)
            copied = 0

            def counted(n: int) -> None:
                nonlocal copied
                copied += n

            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(pointer.size),
                **self.target.action_headers(put),
            }
            stored = self.target.request(
                "PUT",
                put.href,
                body=_chunks_verified(stream, pointer, counted),
                headers=headers,
                chunked=False,
            )
            stored.release_conn()
            _raise_for(stored.status, "the target's LFS upload", put.href)
        finally:
            resp.release_conn()
        verify = upload.actions.get("verify")
        if verify is not None:
            checked = self.target.request(
                "POST",
                verify.href,
                body=f'{{"oid": "{pointer.oid}", "size": {pointer.size}}}'.encode(),
                headers={
                    "Content-Type": "application/vnd.git-lfs+json",
                    "Accept": "application/vnd.git-lfs+json",
                    **self.target.action_headers(verify),
                },
            )
            _raise_for(checked.status, "the target's LFS verify", verify.href)
        return copied


def _raise_for(status: int, what: str, href: str) -> None:
    if 200 <= status < 300:
        return
    where = scrub(href.split("?", 1)[0])
    if status in (408, 429) or status >= 500:
        raise TransientError(f"{what} at {where} answered HTTP {status}")
    raise ProtocolFailure(f"{what} at {where} answered HTTP {status}")
