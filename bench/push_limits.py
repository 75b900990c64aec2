"""Push limits and resumed runs (issue 15): pip into a capped target, the same in 2-second runs, and a
scaled simulation of a 10 GB repository.

    .venv/bin/python bench/push_limits.py                   # pip + simulation (~5 min)
    .venv/bin/python bench/push_limits.py --no-pip          # simulation only
    .venv/bin/python bench/push_limits.py --sim-mib 400     # a larger simulation

Scenarios (both servers are git http-backend on 127.0.0.1; the target has `receive.maxInputSize`):

* `pip-uncapped`: `gitmirror sync` of pip (../shared/bench/pip.bundle) into an empty uncapped target:
  the reference time and pack size.
* `pip-capped`: the same into a target capped at 16 MiB, with `--max-push-bytes 15M`. The two take
  turns, `--runs` times each (default 3): their median times make the time goal.
* `pip-time-limit`: the same with `--time-limit 2`, run again until it exits 0.
* `sim-<N>MiB`: generated histories of incompressible 1 MiB blobs (N/2 and N MiB), mirrored with the
  cap and time limit of a real 10 GB -> GitHub run scaled by N/10 GB, run again until done: runs and
  bytes must grow linearly with the size.

Goals (issue 15): capped total bytes <= 1.3x the pack, time <= 2x uncapped, peak TMPDIR <= 2x SIZE plus
the commit graph, peak RSS <= 150 MiB; time-limited total bytes <= 1.3x the pack. Results go to
bench/results/push-limits-latest.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import installed
import measure
from run import (
    CACHE_DIR,
    RESULTS_DIR,
    SOURCE_SERVER_CONFIG,
    Creds,
    bundle_hint,
    clean_env,
    fmt_bytes,
    git,
    local_mirror,
    log,
    refs_of,
    server_repack,
    write_atomic,
)

from gitmirror.mirror.limits import GIB, MIB, format_size
from gitmirror.run.continuation import push_time_limit
from gitmirror_dev.gitserver import GitHTTPServer
from gitmirror_dev.samples import find_bundle

PIP_CAP = 16 * MIB
PIP_SIZE = "15M"
REAL_REPO_BYTES = 10 * 10**9
GITHUB_LIMIT = 2 * GIB - 64 * MIB  # gitmirror's default for github.com
LAMBDA_SECONDS = 900.0
SIM_BLOB = MIB
SIM_TIME_LIMIT = 1.0
# a 1,769 MB Lambda's sustained transfer to or from GitHub (assumed; measure yours with `gitmirror runs`)
LAMBDA_BYTES_PER_SECOND = 70 * 10**6


def bundle_source(name: str, dst: Path) -> Path:
    bundle = find_bundle(f"{name}.bundle")
    if bundle is None:
        raise SystemExit(f"{name}.bundle not found: {bundle_hint([name])}")
    git("clone", "-q", "--mirror", bundle, dst)
    git("-C", dst, "remote", "remove", "origin")
    server_repack(dst)
    return dst


def simulated_source(total_mib: int, dst: Path) -> Path:
    """`total_mib` commits on main, each adding one incompressible 1 MiB blob (cached)."""
    cached = CACHE_DIR / f"sim-{total_mib}mib.git"
    if not cached.is_dir():
        tmp = cached.with_name(cached.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        git("init", "-q", "--bare", tmp)
        rng = random.Random(total_mib)
        proc = subprocess.Popen(["git", "-C", str(tmp), "fast-import", "--quiet"], stdin=subprocess.PIPE)
        assert proc.stdin is not None
        for i in range(total_mib):
            data = rng.randbytes(SIM_BLOB)
            msg = f"blob {i}\n".encode()
            proc.stdin.write(b"commit refs/heads/main\n")
            proc.stdin.write(f"committer Bench <bench@example.invalid> {1700000000 + i} +0000\n".encode())
            proc.stdin.write(b"data %d\n%s" % (len(msg), msg))
            if i == 0:
                proc.stdin.write(b"deleteall\n")
            proc.stdin.write(f"M 100644 inline data/{i:06d}.bin\n".encode())
            proc.stdin.write(b"data %d\n" % len(data) + data + b"\n")
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError("git fast-import failed")
        git("-C", tmp, "tag", "v1.0", "refs/heads/main")
        server_repack(tmp)
        tmp.rename(cached)
    local_mirror(cached, dst)
    return dst


def pushed_bytes(server: GitHTTPServer) -> tuple[int, int, int]:
    """(total, largest, count) of the receive-pack request bodies the target got."""
    bodies = [r.request_bytes for r in server.rpc_requests("git-receive-pack")]
    return sum(bodies), max(bodies, default=0), len(bodies)


def sync_until_done(
    src_url: str, dst_url: str, flags: list[str], creds: Creds, work: Path, max_runs: int = 200
) -> dict[str, Any]:
    """Run `gitmirror sync` with `flags` until it exits 0 (4 = incomplete: run again)."""
    env = {**clean_env(), **creds.gitmirror_env()}
    runs: list[dict[str, Any]] = []
    for n in range(1, max_runs + 1):
        tmp = work / f"tmp-{n}"
        m = measure.run(
            [str(installed.gitmirror_bin()), "sync", src_url, dst_url, "--json", *flags],
            env=env,
            tmpdir=str(tmp),
        )
        shutil.rmtree(tmp, ignore_errors=True)
        out = json.loads(m.stdout) if m.stdout.strip() else {}
        runs.append(
            {
                "exit": m.exit_code,
                "wall_s": round(m.wall_s, 2),
                "maxrss_mib": round(m.maxrss_kib / 1024, 1),
                "tmp_peak_mib": round(m.tmp_peak_bytes / MIB, 1),
                "remaining": len(out.get("remaining_refs") or []),
                "error": out.get("error"),
            }
        )
        if m.exit_code != 4:
            break
    return {"runs": runs, "exit": runs[-1]["exit"]}


def scenario(
    name: str,
    source: Path,
    work: Path,
    flags: list[str],
    *,
    cap: int | None,
) -> dict[str, Any]:
    creds = Creds.random()
    config = {"receive.maxInputSize": str(cap)} if cap else {}
    with (
        GitHTTPServer(
            work / f"{name}-src", creds.src_user, creds.src_token, extra_config=SOURCE_SERVER_CONFIG
        ) as s,
        GitHTTPServer(work / f"{name}-dst", creds.dst_user, creds.dst_token, extra_config=config) as t,
    ):
        src_repo = s.repo_path("src.git")
        shutil.move(str(source), src_repo)
        t.create_bare("dst.git")
        log(f"{name}: gitmirror sync {' '.join(flags)}")
        started = time.monotonic()
        done = sync_until_done(s.repo_url("src.git"), t.repo_url("dst.git"), flags, creds, work)
        total_wall = time.monotonic() - started
        total, largest, pushes = pushed_bytes(t)
        same = refs_of(src_repo) == refs_of(t.repo_path("dst.git"))
        shutil.move(str(src_repo), source)  # reused by the next scenario
    runs = done["runs"]
    return {
        "name": name,
        "flags": flags,
        "cap": cap,
        "ok": done["exit"] == 0 and same,
        "runs": len(runs),
        "wall_s": round(total_wall, 2),
        "bytes_pushed": total,
        "largest_push": largest,
        "pushes": pushes,
        "peak_rss_mib": max(r["maxrss_mib"] for r in runs),
        "peak_tmp_mib": max(r["tmp_peak_mib"] for r in runs),
        "per_run": runs,
    }


def wall(s: dict[str, Any]) -> str:
    walls = s.get("walls_s")
    if not walls or len(walls) < 2:
        return f"{s['wall_s']:.1f} s"
    return f"{s['wall_s']:.1f} s (median of {', '.join(f'{w:.1f}' for w in walls)})"


def goal(text: str, value: float, limit: float, unit: str = "") -> dict[str, Any]:
    return {
        "goal": text,
        "value": round(value, 3),
        "limit": round(limit, 3),
        "unit": unit,
        "met": value <= limit,
    }


def graph_bytes(source: Path) -> int:
    """The commit graph gitmirror fetches (commits and tags only, as `filter tree:0` sends them)."""
    out = git(
        "-C", source, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize:disk)"
    )
    return sum(
        int(size) for kind, size in (line.split() for line in out.splitlines()) if kind in ("commit", "tag")
    )


def median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time (its other figures with it), every run's time kept in `walls_s`."""
    ordered = sorted(results, key=lambda r: r["wall_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["walls_s"] = [r["wall_s"] for r in results]
    chosen["ok"] = all(r["ok"] for r in results)
    return chosen


def run_pip(work: Path, runs: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    source = bundle_source("pip", work / "pip.git")
    graph = graph_bytes(source)
    # the time goal is a ratio of two runs on a shared machine: taken in turns, medians compared
    uncapped_runs: list[dict[str, Any]] = []
    capped_runs: list[dict[str, Any]] = []
    for i in range(runs):
        uncapped_runs.append(scenario(f"pip-uncapped-{i}", source, work, [], cap=None))
        capped_runs.append(
            scenario(f"pip-capped-{i}", source, work, ["--max-push-bytes", PIP_SIZE], cap=PIP_CAP)
        )
    uncapped = median_run(uncapped_runs) | {"name": "pip-uncapped"}
    capped = median_run(capped_runs) | {"name": "pip-capped"}
    limited = scenario(
        "pip-time-limit", source, work, ["--max-push-bytes", PIP_SIZE, "--time-limit", "2"], cap=PIP_CAP
    )
    pack = uncapped["bytes_pushed"]
    size = 15 * MIB
    goals = [
        goal("pip capped: total bytes pushed / pack", capped["bytes_pushed"] / pack, 1.3, "x"),
        goal("pip capped: time / uncapped time", capped["wall_s"] / uncapped["wall_s"], 2.0, "x"),
        goal("pip capped: largest push / SIZE", capped["largest_push"] / size, 1.0, "x"),
        goal(
            "pip capped: peak TMPDIR / (2x SIZE + commit graph)",
            capped["peak_tmp_mib"] * MIB / (2 * size + graph),
            1.0,
            "x",
        ),
        goal("pip capped: peak RSS", capped["peak_rss_mib"], 150.0, "MiB"),
        goal("pip --time-limit 2: total bytes pushed / pack", limited["bytes_pushed"] / pack, 1.3, "x"),
        goal("pip --time-limit 2: largest push / SIZE", limited["largest_push"] / size, 1.0, "x"),
    ]
    return [uncapped, capped, limited], goals


def run_simulation(work: Path, total_mib: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two sizes, cap and time limit scaled from the real 10 GB -> GitHub run by the same factor."""
    results = []
    scale = total_mib * MIB / REAL_REPO_BYTES
    size = max(2 * SIM_BLOB, int(GITHUB_LIMIT * scale))
    # Loopback moves bytes ~50x faster than a Lambda's network, so the time limit is not scaled by
    # size: it is set so that a run holds about as many pushes as a real run would (a few).
    seconds = SIM_TIME_LIMIT
    for mib in (total_mib // 2, total_mib):
        source = simulated_source(mib, work / f"sim-{mib}.git")
        flags = ["--max-push-bytes", format_size(size), "--time-limit", f"{seconds:.2f}"]
        results.append(scenario(f"sim-{mib}MiB", source, work, flags, cap=size + MIB))
        shutil.rmtree(source, ignore_errors=True)
    half, full = results
    linear = {
        "scale": scale,
        "max_push_bytes": size,
        "time_limit_s": round(seconds, 2),
        "runs_ratio": full["runs"] / max(half["runs"], 1),
        "bytes_ratio": full["bytes_pushed"] / max(half["bytes_pushed"], 1),
        "pushes_ratio": full["pushes"] / max(half["pushes"], 1),
        "seconds_per_gib": full["wall_s"] / (full["bytes_pushed"] / GIB),
        "bytes_per_push": full["bytes_pushed"] / max(full["pushes"], 1),
    }
    return results, linear


def projection(linear: dict[str, Any]) -> dict[str, Any]:
    """A real 10 GB repository into GitHub from a 1,769 MB Lambda: pushes of at most the default
    limit, pushes started during the first `push_time_limit(900)` seconds of each run."""
    # pushes fill ~this share of the limit (measured in the simulation)
    fill = linear["bytes_per_push"] / linear["max_push_bytes"]
    pushes = math.ceil(REAL_REPO_BYTES / (GITHUB_LIMIT * fill))
    # each push first downloads its pack from the source, then uploads it
    push_seconds = 2 * GITHUB_LIMIT * fill / LAMBDA_BYTES_PER_SECOND
    window = push_time_limit(LAMBDA_SECONDS - 30.0)
    per_run = max(1, math.floor(window / push_seconds) + 1)
    runs = math.ceil(pushes / per_run)
    return {
        "pushes": pushes,
        "seconds_per_push": round(push_seconds),
        "pushes_per_run": per_run,
        "runs": runs,
        "minutes": round((pushes * push_seconds + runs * 30) / 60, 1),
        "scratch_peak": f"{fmt_bytes(GITHUB_LIMIT)} + the commit graph",
    }


def render(result: dict[str, Any]) -> str:
    lines = ["# Push limits benchmark", ""]
    lines += [
        "| scenario | flags | runs | pushes | bytes pushed | largest push | time | peak RSS | peak TMPDIR | ok |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|---|"]
    for s in result["scenarios"]:
        lines.append(
            f"| {s['name']} | `{' '.join(s['flags'])}` | {s['runs']} | {s['pushes']} | {fmt_bytes(s['bytes_pushed'])} | "
            f"{fmt_bytes(s['largest_push'])} | {wall(s)} | {s['peak_rss_mib']} MiB | {s['peak_tmp_mib']} MiB | "
            f"{'yes' if s['ok'] else 'NO'} |"
        )
    if result.get("linear"):
        lin = result["linear"]
        lines += [
            "",
            f"Simulation scale {lin['scale']:.4f} of 10 GB: `--max-push-bytes {format_size(lin['max_push_bytes'])}`, "
            f"`--time-limit {lin['time_limit_s']}`. Doubling the size: runs x{lin['runs_ratio']:.2f}, "
            f"pushes x{lin['pushes_ratio']:.2f}, bytes x{lin['bytes_ratio']:.2f}.",
            "",
            "Projection for a real 10 GB repository to GitHub from a 1,769 MB Lambda (assuming "
            f"{LAMBDA_BYTES_PER_SECOND // 10**6} MB/s each way): {result['projection']['pushes']} pushes of "
            f"~{result['projection']['seconds_per_push']} s, {result['projection']['pushes_per_run']} per run, "
            f"{result['projection']['runs']} run(s), ~{result['projection']['minutes']} minutes; "
            f"peak /tmp {result['projection']['scratch_peak']}.",
        ]
    if result.get("goals"):
        lines += ["", "| goal | value | limit | met |", "|---|---|---|---|"]
        for g in result["goals"]:
            lines.append(
                f"| {g['goal']} | {g['value']}{g['unit']} | {g['limit']}{g['unit']} | {'yes' if g['met'] else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-pip", action="store_true", help="skip the pip scenarios")
    ap.add_argument("--sim-mib", type=int, default=200, help="simulated repository size (default 200 MiB)")
    ap.add_argument(
        "--runs", type=int, default=3, help="runs of pip uncapped and capped, in turns (medians; default 3)"
    )
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"scenarios": [], "goals": []}
    with tempfile.TemporaryDirectory(prefix="gitmirror-bench-limits-") as tmp:
        work = Path(tmp)
        if not args.no_pip:
            scenarios, goals = run_pip(work, max(1, args.runs))
            result["scenarios"] += scenarios
            result["goals"] += goals
        sims, linear = run_simulation(work, args.sim_mib)
        result["scenarios"] += sims
        result["linear"] = linear
        result["projection"] = projection(linear)
        result["goals"].append(goal("simulation: runs when the size doubles", linear["runs_ratio"], 2.5, "x"))
        result["goals"].append(
            goal("simulation: bytes when the size doubles", linear["bytes_ratio"], 2.2, "x")
        )
    report = render(result)
    print(report)
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        write_atomic(RESULTS_DIR / "push-limits-latest.json", json.dumps(result, indent=2) + "\n")
        write_atomic(RESULTS_DIR / "push-limits-latest.md", report)
    return 0 if all(s["ok"] for s in result["scenarios"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
