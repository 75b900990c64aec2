"""A listing held as its differences from another (`refmaps`) behaves as the dict it stands for:
differential tests against plain dicts, through the planner and the engine's tip sets."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from dulwich.client import read_pkt_refs_v1
from dulwich.protocol import Protocol, pkt_line

from gitmirror.mirror import engine
from gitmirror.mirror.planner import names_that_may_differ, plan_ref_updates, same_in_scope, scoped_refs
from gitmirror.mirror.refmaps import ListingDelta, SharedListingBuilder
from gitmirror.mirror.transport.http_client import advertised_refs_among
from gitmirror.values import MirrorOptions


class UnknownAncestry:
    def is_ancestor(self, ancestor: str, descendant: str) -> bool | None:
        return ancestor < descendant  # any fixed answer will do: both sides are asked the same

    def proves_ancestor(self, ancestor: str, descendant: str) -> bool:
        return ancestor < descendant


def sha(n: int) -> str:
    return f"{n:040x}"


def built(base: dict[str, str], target: dict[str, str]) -> Mapping[str, str]:
    builder = SharedListingBuilder(base)
    for name, value in target.items():
        builder.add(name, value)
    return builder.result()


def random_pair(rng: random.Random, size: int, changes: int) -> tuple[dict[str, str], dict[str, str]]:
    names = [f"refs/heads/b{i:04d}" for i in range(size)] + ["HEAD", "refs/tags/v1", "refs/pull/1/head"]
    source = {name: sha(rng.randrange(size // 2 + 1)) for name in sorted(names)}
    target = dict(source)
    for _ in range(changes):
        name = rng.choice(names)
        roll = rng.random()
        if roll < 0.4:
            target.pop(name, None)
        elif roll < 0.8:
            target[name] = sha(rng.randrange(size))
        else:
            target[f"refs/heads/new{rng.randrange(1000):03d}"] = sha(rng.randrange(size))
    return source, dict(sorted(target.items()))


def test_equal_entries_are_the_base_s_own_objects_and_differences_are_kept() -> None:
    equal = {f"refs/heads/c{i}": sha(3 + i) for i in range(4)}
    base = {"HEAD": sha(1), "refs/heads/a": sha(1), "refs/heads/b": sha(2), **equal}
    target = {"HEAD": sha(1), "refs/heads/a": sha(9), "refs/heads/aa": sha(4), **equal}
    refs = built(base, {"".join(k): "".join(v) for k, v in target.items()})  # new objects, as parsed
    assert isinstance(refs, ListingDelta)
    assert dict(refs.items()) == target and refs == target and len(refs) == 7
    assert refs.changed == {"refs/heads/a": sha(9), "refs/heads/aa": sha(4)}
    assert refs.missing == {"refs/heads/b"}
    assert "refs/heads/b" not in refs and refs.get("refs/heads/b") is None
    with pytest.raises(KeyError):
        refs["refs/heads/b"]
    assert refs["refs/heads/c0"] is base["refs/heads/c0"]  # shared, not a copy
    assert list(refs) == ["HEAD", "refs/heads/a", *equal, "refs/heads/aa"]
    assert sorted(refs.values()) == sorted(target.values())
    assert refs.differing() == {"refs/heads/a", "refs/heads/aa", "refs/heads/b"}


def test_an_equal_listing_costs_no_entry_and_compares_equal_at_once() -> None:
    base = {f"refs/heads/{i:03d}": sha(i) for i in range(100)}
    refs = built(base, dict(base))
    assert isinstance(refs, ListingDelta) and not refs.changed and not refs.missing
    assert refs == base and same_in_scope(base, refs, MirrorOptions())


def test_a_listing_out_of_order_or_mostly_different_is_a_plain_dict() -> None:
    base = {f"refs/heads/{i:03d}": sha(i) for i in range(10)}
    unordered = dict(reversed(list(base.items())))
    refs = built(base, unordered)
    assert type(refs) is dict and refs == base
    other = {f"refs/heads/{i:03d}": sha(i + 1) for i in range(10)}
    refs = built(base, {"".join(k): v for k, v in other.items()})
    assert type(refs) is dict and refs == other
    assert all(any(name is key for key in base) for name in refs)  # the names are still base's
    assert built(base, {}) == {}


@pytest.mark.parametrize("seed", range(40))
def test_a_shared_listing_plans_as_the_dict_it_stands_for(seed: int) -> None:
    rng = random.Random(seed)
    source, target = random_pair(rng, rng.choice([5, 40, 200]), rng.choice([0, 1, 3, 12]))
    shared = built(source, target)
    assert dict(shared.items()) == target
    for options in (
        MirrorOptions(),
        MirrorOptions(keep_divergent_refs=True),
        MirrorOptions(branch_filters=["b00*"]),
    ):
        assert dict(scoped_refs(shared, options).items()) == dict(scoped_refs(target, options).items())
        assert same_in_scope(source, shared, options) == (
            dict(scoped_refs(source, options).items()) == dict(scoped_refs(target, options).items())
        )
        for default in ("refs/heads/b0000", None):
            assert plan_ref_updates(source, shared, default, UnknownAncestry(), options) == plan_ref_updates(
                source, target, default, UnknownAncestry(), options
            )


@pytest.mark.parametrize("seed", range(40))
def test_the_engine_s_tip_sets_of_a_shared_listing_are_those_of_the_dict(seed: int) -> None:
    rng = random.Random(seed)
    source, target = random_pair(rng, rng.choice([5, 40, 300]), rng.choice([0, 1, 3, 12]))
    shared = built(source, target)
    if not isinstance(shared, ListingDelta):
        return
    lacking = engine._tips_target_lacks(shared, source)
    assert lacking == set(source.values()) - set(target.values())
    assert engine._tips_target_lacks(target, source) is None
    default = "refs/heads/b0001" if "refs/heads/b0001" in source else None
    haves = engine._Haves(shared, source, default)
    plain = engine._Haves(target, source, default)
    assert list(haves) == list(plain) and bool(haves) == bool(plain)
    assert haves.unlisted(source) == plain.unlisted(source)
    in_scope = scoped_refs(source, MirrorOptions())
    tips = engine._SourceTips(in_scope, source, default)
    candidates = set(target.values()) | {sha(10**6)}
    assert tips.among(candidates) == candidates & tips.all()
    # every name whose entry differs is among those looked at, and only the target's names
    looked_at = names_that_may_differ(shared, scoped_refs(source, MirrorOptions()))
    assert looked_at == sorted(looked_at) and set(looked_at) <= set(target)
    assert set(looked_at) >= {n for n in target if source.get(n) != target[n]}


def test_receive_pack_advertisement_keeps_the_capabilities_and_the_named_refs_only() -> None:
    lines = [
        pkt_line(b"# service=git-receive-pack\n"),
        b"0000",
        pkt_line(sha(1).encode() + b" refs/heads/a\0report-status ofs-delta\n"),
        pkt_line(sha(2).encode() + b" refs/heads/b\n"),
        pkt_line(sha(3).encode() + b" .have\n"),
        pkt_line(sha(4).encode() + b" refs/heads/c\n"),
        b"0000",
    ]
    stream = bytearray(b"".join(lines))

    def read(n: int) -> bytes:
        out = bytes(stream[:n])
        del stream[:n]
        return out

    proto = Protocol(advertised_refs_among(read, {"refs/heads/c"}), lambda _data: None)
    assert list(proto.read_pkt_seq()) == [b"# service=git-receive-pack\n"]
    refs, capabilities = read_pkt_refs_v1(proto.read_pkt_seq())
    assert refs == {
        b"refs/heads/a": sha(1).encode(),
        b".have": sha(3).encode(),
        b"refs/heads/c": sha(4).encode(),
    }
    assert capabilities == {b"report-status", b"ofs-delta"}


def test_an_error_in_a_receive_pack_advertisement_is_kept() -> None:
    stream = bytearray(pkt_line(b"# service=git-receive-pack\n") + b"0000" + pkt_line(b"ERR access denied\n"))

    def read(n: int) -> bytes:
        out = bytes(stream[:n])
        del stream[:n]
        return out

    proto = Protocol(advertised_refs_among(read, set()), lambda _data: None)
    proto.read_pkt_line()
    proto.read_pkt_line()
    assert proto.read_pkt_line() == b"ERR access denied\n"
