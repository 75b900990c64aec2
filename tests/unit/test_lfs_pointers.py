"""LFS pointer files: parsing, and finding them in real git packs (plain, offset- and ref-deltas)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from dulwich.pack import OFS_DELTA, REF_DELTA, create_delta
from dulwich.repo import Repo

from gitmirror.mirror.lfs.follow import PointerFollower
from gitmirror.mirror.lfs.pointers import LfsPointer, PackScan, parse_pointer, scan, scan_pack
from gitmirror.mirror.lfs.sync import pointers_in_fetched, pointers_in_store
from gitmirror.mirror.transport import FetchedPack
from tests.support import gitrepo as g
from tests.support.packs import pack_of

OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"


def pointer(oid: str = OID, size: int = 12345, extra: str = "") -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\n{extra}oid sha256:{oid}\nsize {size}\n".encode()


def test_parse_pointer() -> None:
    assert parse_pointer(pointer()) == LfsPointer(OID, 12345)
    assert parse_pointer(pointer(extra="ext-0-foo sha256:" + "1" * 64 + "\n")) == LfsPointer(OID, 12345)
    legacy = pointer().replace(b"git-lfs.github.com", b"hawser.git-scm.com")
    assert parse_pointer(legacy) == LfsPointer(OID, 12345)
    for bad in (
        pointer().replace(b"spec/v1", b"spec/v2"),
        pointer(oid="XYZ" + OID[3:]),
        pointer(oid=OID[:-1]),
        pointer().replace(b"size 12345", b"size -1"),
        pointer().replace(b"size 12345\n", b""),
        pointer() + b"oid sha256:" + OID.encode() + b"\n",  # a key twice
        pointer() + b"x" * 1024,  # pointers are < 1 KB
        pointer().replace(b"size", b"s\xc3\xa9ze"),
        b"plain text\n",
        b"",
    ):
        assert parse_pointer(bad) is None, bad


def _pack(repo: Path, dest: Path, *, ofs_delta: bool) -> Path:
    """A pack of every object of `repo`, as git writes it (offset- or ref-deltas)."""
    objects = g.run_git("-C", str(repo), "rev-list", "--objects", "--all").stdout
    args = ["-C", str(repo), "pack-objects", "-q", "--window=50"]
    if ofs_delta:
        args.append("--delta-base-offset")
    name = g.run_git(*args, str(dest / "pack"), input=objects).stdout.decode().strip()
    return dest / f"pack-{name}.pack"


def _history(repo: Path) -> set[LfsPointer]:
    """Pointers (two that differ by one byte, so git stores one as a delta of the other), a large blob
    before them and a tree that is a delta of another tree."""
    g.init_bare(repo)
    big = os.urandom(3 * 1024 * 1024)
    first = g.commit(
        repo, "refs/heads/main", {"big.dat": big, "a.bin": pointer(size=1000), "t.txt": "x\n" * 50}
    )
    g.commit(repo, "refs/heads/main", {"b.bin": pointer(size=1001), "t.txt": "x\n" * 51}, parents=[first])
    return {LfsPointer(OID, 1000), LfsPointer(OID, 1001)}


def _reader(path: Path):  # type: ignore[no-untyped-def]
    data = path.read_bytes()
    return lambda offset, size: data[offset : offset + size]


@pytest.mark.parametrize("ofs_delta", [True, False])
def test_scan_finds_pointers_in_plain_and_delta_entries(tmp_path: Path, ofs_delta: bool) -> None:
    repo = tmp_path / "r.git"
    expected = _history(repo)
    pack = _pack(repo, tmp_path, ofs_delta=ofs_delta)
    verify = g.run_git("verify-pack", "-v", str(pack.with_suffix(".idx"))).stdout.decode()
    deltified_blobs = [line for line in verify.splitlines() if " blob " in line and len(line.split()) > 6]
    assert deltified_blobs, "git stored neither pointer as a delta: the scenario needs one"

    # the delta is resolved against its base, a pointer read earlier in the same pass
    assert scan_pack(_reader(pack)) == expected

    indexed = Repo.init_bare(str(tmp_path / "indexed.git"), mkdir=True)
    for suffix in (".pack", ".idx"):
        os.link(pack.with_suffix(suffix), Path(indexed.object_store.pack_dir) / pack.with_suffix(suffix).name)
    assert pointers_in_store(indexed) == expected

    # the scan that follows the download from a child process, as the engine runs it
    fetched = FetchedPack(Repo.init_bare(str(tmp_path / "fetched.git"), mkdir=True))
    follower = PointerFollower(fetched, follow_from=0)
    data = pack.read_bytes()
    for start in range(0, len(data), 65_000):
        fetched.write(data[start : start + 65_000])
        time.sleep(0.001)
    fetched.finish()
    assert follower._proc is not None  # a child followed it
    assert follower.result().pointers == expected and follower.result().pending == []
    follower.stop()
    assert not fetched.indexed
    assert pointers_in_fetched(fetched).pointers == expected
    fetched.discard()

    # a small download is scanned in-process at the end
    small = FetchedPack(Repo.init_bare(str(tmp_path / "small.git"), mkdir=True))
    follower = PointerFollower(small)
    small.write(data)
    small.finish()
    assert follower._proc is None and follower.result().pointers == expected
    small.discard()


def test_pointers_across_the_scan_windows_and_at_the_end_of_the_pack(tmp_path: Path) -> None:
    """A pack of several read windows (1 MiB each) of small entries: entries that straddle a window's
    end, the pack's last entries (a short window) and a pointer as the very last entry are all read,
    walking the pack and following its download alike."""
    entries: list[tuple[int, bytes, bytes | int | None]] = []
    expected = set()
    for i in range(3000):
        entries.append((3, os.urandom(1000 + 7 * (i % 50)), None))  # incompressible: ~1 KB entries
        entries.append((3, pointer(oid=f"{i:064x}", size=i), None))
        expected.add(LfsPointer(f"{i:064x}", i))
    entries += [(3, os.urandom(2_500_000), None), (3, pointer(oid="e" * 64, size=5), None)]
    expected.add(LfsPointer("e" * 64, 5))
    data = pack_of(entries)
    assert len(data) > 5 * 1024 * 1024  # several windows

    assert scan_pack(lambda offset, size: data[offset : offset + size]) == expected
    fetched = FetchedPack(Repo.init_bare(str(tmp_path / "fetched.git"), mkdir=True))
    follower = PointerFollower(fetched, follow_from=0)
    for start in range(0, len(data), 300_000):
        fetched.write(data[start : start + 300_000])
    fetched.finish()
    assert follower._proc is not None and follower.result().pointers == expected
    follower.stop()
    fetched.discard()


def test_a_scan_following_a_download_ends_with_it(tmp_path: Path) -> None:
    empty = FetchedPack(Repo.init_bare(str(tmp_path / "empty.git"), mkdir=True))
    follower = PointerFollower(empty, follow_from=0)
    empty.finish()
    assert follower.result() == PackScan(set(), [])  # nothing was fetched

    # a well-formed pack (its checksum holds) that announces five entries and has none
    damaged = FetchedPack(Repo.init_bare(str(tmp_path / "damaged.git"), mkdir=True))
    follower = PointerFollower(damaged, follow_from=0)
    head = b"PACK\0\0\0\2\0\0\0\5"
    damaged.write(head + hashlib.sha1(head).digest())
    damaged.finish()
    with pytest.raises(ValueError, match="cannot be read"):
        follower.result()
    damaged.discard()

    abandoned = FetchedPack(Repo.init_bare(str(tmp_path / "abandoned.git"), mkdir=True))
    follower = PointerFollower(abandoned, follow_from=0)
    abandoned.write(b"PACK\0\0\0\2")
    follower.stop()  # a failed download: the child is ended, not waited for
    abandoned.discard()


def test_no_pointers_in_a_pack_of_trees_and_text(tmp_path: Path) -> None:
    repo = tmp_path / "r.git"
    g.init_bare(repo)
    first = g.commit(repo, "refs/heads/main", {f"f{i}": f"{i}\n" for i in range(40)})
    g.commit(repo, "refs/heads/main", {"f0": "changed\n"}, parents=[first])
    pack = _pack(repo, tmp_path, ofs_delta=True)
    assert scan_pack(_reader(pack)) == set()


def test_scan_rejects_what_is_not_a_pack() -> None:
    with pytest.raises(ValueError):
        scan_pack(lambda offset, size: b"NOTAPACK"[offset : offset + size])


def _blob_id(data: bytes) -> bytes:
    return hashlib.sha1(b"blob %d\0%s" % (len(data), data)).digest()


def test_a_thin_pack_holds_pointers_as_deltas_onto_bases_it_lacks() -> None:
    """A pointer stored as a delta onto an older pointer (any encoder: dulwich's copies even short runs
    of hex) whose base only the target has: pending until the base is fetched, then read."""
    old, new, newer = (pointer(oid=c * 64, size=7) for c in "abc")
    version_old, version_new = b'__version__ = "0.23.0"\n' * 3, b'__version__ = "0.23.1"\n' * 3
    text_old, text_new = b"a line of text\n" * 12, b"a line of text\n" * 11 + b"another line\n"
    binary_old, binary_new = bytes(range(256)), bytes(range(255, -1, -1))
    plain = pointer(oid="d" * 64, size=99)
    pack = pack_of(
        [
            (REF_DELTA, b"".join(create_delta(old, new)), _blob_id(old)),  # onto the target's old pointer
            (OFS_DELTA, b"".join(create_delta(new, newer)), 0),  # onto the entry above
            (REF_DELTA, b"".join(create_delta(version_old, version_new)), _blob_id(version_old)),
            (REF_DELTA, b"".join(create_delta(text_old, text_new)), _blob_id(text_old)),
            (REF_DELTA, b"".join(create_delta(binary_old, binary_new)), _blob_id(binary_old)),
            (3, plain, None),
        ]
    )
    found = scan(lambda offset, size: pack[offset : offset + size])
    assert found.pointers == {LfsPointer("d" * 64, 99)}
    pending = [(p.base_id, p.base_offset) for p in found.pending]
    # too small to be a pointer (69 bytes) or not ASCII: ruled out; a text of pointer size: pending
    assert pending == [(_blob_id(old), None), (None, 12), (_blob_id(text_old), None)]
    assert found.base_ids == {_blob_id(old), _blob_id(text_old)}
    assert found.resolve({_blob_id(old): old, _blob_id(text_old): text_old}) == {
        LfsPointer("d" * 64, 99),
        LfsPointer("b" * 64, 7),
        LfsPointer("c" * 64, 7),
    }
    assert found.resolve({}) == found.pointers  # without the base the deltas stay unread
