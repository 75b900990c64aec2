"""Naive dulwich mirror: full fetch into a fresh temp repository, then push everything.

    python bench/naive_dulwich.py SOURCE_URL TARGET_URL

This is the "obvious" way to mirror with dulwich and the baseline gitmirror has to
beat: no negotiation with the target before fetching, so every run downloads the
whole source history into a temporary bare repository (under $TMPDIR) and then
pushes all ``refs/heads/*`` and ``refs/tags/*`` with ``send_pack``, letting dulwich
compute the pack from the target's advertised refs. Target heads/tags that the
source lacks are deleted (mirror semantics); divergent target refs are overwritten.

Credentials come from the same environment variables as gitmirror:
GITMIRROR_SOURCE_USERNAME / GITMIRROR_SOURCE_TOKEN and
GITMIRROR_TARGET_USERNAME / GITMIRROR_TARGET_TOKEN (HTTP Basic).

Prints one JSON object (status, refs, objects_fetched, error) and exits 0 on success.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from dulwich.client import HttpGitClient
from dulwich.objects import ZERO_SHA
from dulwich.repo import Repo

MIRRORED = (b"refs/heads/", b"refs/tags/")


def _client(url: str, side: str) -> tuple[HttpGitClient, str]:
    base, _, path = url.rstrip("/").rpartition("/")
    token = os.environ.get(f"GITMIRROR_{side}_TOKEN")
    username = os.environ.get(f"GITMIRROR_{side}_USERNAME") or ("oauth2" if token else None)
    return HttpGitClient(base + "/", username=username, password=token), path


def _mirrored(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {
        name: sha
        for name, sha in refs.items()
        if name.startswith(MIRRORED) and not name.endswith(b"^{}") and sha != ZERO_SHA
    }


def mirror(src_url: str, dst_url: str) -> dict[str, object]:
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="naive-dulwich-")
    try:
        repo = Repo.init_bare(tmp)
        src, src_path = _client(src_url, "SOURCE")
        fetched = src.fetch(src_path, repo)
        t_fetch = time.monotonic() - t0
        wanted = _mirrored(dict(fetched.refs))

        def update_refs(old: dict[bytes, bytes]) -> dict[bytes, bytes]:
            new = dict(old)
            for name in _mirrored(old):
                if name not in wanted:
                    new[name] = ZERO_SHA
            new.update(wanted)
            return new

        dst, dst_path = _client(dst_url, "TARGET")
        result = dst.send_pack(dst_path, update_refs, generate_pack_data=repo.generate_pack_data)
        failed = {k.decode(): v for k, v in (result.ref_status or {}).items() if v is not None}
        return {
            "status": "failed" if failed else "success",
            "refs": len(wanted),
            "rejected": failed,
            "fetch_seconds": round(t_fetch, 3),
            "push_seconds": round(time.monotonic() - t0 - t_fetch, 3),
            "error": None,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        out = mirror(argv[0], argv[1])
    except Exception as exc:  # noqa: BLE001 - report any failure as JSON
        out = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
    return 0 if out["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
