"""Run one command and measure it: wall time, peak RSS, peak TMPDIR usage.

Library use (what bench/run.py does)::

    m = measure.run(["git", "clone", ...], env=env, tmpdir="/path/fresh-dir")

CLI use::

    python bench/measure.py [--tmpdir DIR] -- CMD ARGS...

prints the measurement as one JSON line on stderr after the command ends; the
command's own stdout/stderr pass through.

What is measured:

* ``wall_s``: monotonic wall time from spawn to exit.
* ``maxrss_kib``: ``ru_maxrss`` of the command: the peak RSS of the largest single
  process among the command and all descendants it waited for (not a sum).
  Caveat: Linux folds the *spawning* process's high-water RSS into a child's
  ``ru_maxrss`` at ``exec()``, so ``wait4()`` on a child of this (Python, tens of
  MiB) process would report at least our own peak. The command is therefore
  started under GNU ``time`` (a ~1 MiB C process; ``/usr/bin/time -f %M``), whose
  report is used. Without GNU time the ``wait4()`` value is used and
  ``rss_source`` says so.
* ``tree_rss_kib``: the peak of the *sum* of RSS over the child's live process
  tree, sampled from ``/proc`` every ``poll`` seconds (catches pipelines such as
  git's clone = remote-http + fetch-pack + index-pack running concurrently; it
  double-counts shared pages and can miss peaks shorter than the poll interval).
* ``tmp_peak_bytes``: the command runs with ``TMPDIR=<tmpdir>``; a thread walks
  that directory every ``poll`` seconds (du-like: allocated blocks, hard links
  counted once) and keeps the peak. Files written outside TMPDIR are not seen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
GNU_TIME = next((p for p in ("/usr/bin/time", "/bin/time") if os.access(p, os.X_OK)), None)
OUTPUT_CAP = 16 * 1024 * 1024  # a tool's JSON report lists every ref: 5,000 refs is about 1 MiB


@dataclass
class Measurement:
    exit_code: int
    wall_s: float
    maxrss_kib: int
    tree_rss_kib: int
    tmp_peak_bytes: int
    timed_out: bool = False
    rss_source: str = "gnu-time"
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)

    def to_dict(self, with_output: bool = False) -> dict[str, object]:
        d = asdict(self)
        if not with_output:
            d.pop("stdout")
            d.pop("stderr")
        return d


def du_bytes(path: str) -> int:
    """Allocated bytes below path (like ``du -s --bytes`` on blocks); tolerant of races."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, rss_kib) for every live process."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        try:
            table[int(name)] = (int(rest[1]), int(rest[21]) * PAGE_KIB)
        except (IndexError, ValueError):
            continue
    return table


def tree_rss_kib(root: int) -> int:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid][1]
        stack.extend(children.get(pid, ()))
    return total


class _Sampler(threading.Thread):
    def __init__(self, pid: int, tmpdir: str | None, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.tmpdir = tmpdir
        self.interval = interval
        self.stop = threading.Event()
        self.tmp_peak = 0
        self.rss_peak = 0

    def sample(self) -> None:
        if self.tmpdir:
            self.tmp_peak = max(self.tmp_peak, du_bytes(self.tmpdir))
        self.rss_peak = max(self.rss_peak, tree_rss_kib(self.pid))

    def run(self) -> None:
        while True:
            self.sample()
            if self.stop.wait(self.interval):
                return


def _read_capped(f: IO[bytes] | None) -> str:
    if f is None:
        return ""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - OUTPUT_CAP))
    return f.read().decode("utf-8", "replace")


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    tmpdir: str | None = None,
    timeout: float | None = None,
    poll: float = 0.05,
    capture: bool = True,
) -> Measurement:
    """Run argv to completion and measure it (see module docstring)."""
    child_env = dict(os.environ if env is None else env)
    if tmpdir is not None:
        os.makedirs(tmpdir, exist_ok=True)
        child_env["TMPDIR"] = tmpdir
    out = tempfile.TemporaryFile() if capture else None
    err = tempfile.TemporaryFile() if capture else None
    rss_fd, rss_file = tempfile.mkstemp(prefix="measure-rss-")
    os.close(rss_fd)
    cmd = list(argv)
    if GNU_TIME:
        cmd = [GNU_TIME, "-q", "-f", "%M", "-o", rss_file, *cmd]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=child_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    sampler = _Sampler(proc.pid, tmpdir, poll)
    sampler.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if timer is not None:
            timer.cancel()
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop.set()
    sampler.join()
    # Leftover grandchildren (daemonised helpers) would distort the next run.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    maxrss, rss_source = int(usage.ru_maxrss), "wait4 (floor = harness RSS)"
    try:
        with open(rss_file) as f:
            last = f.read().split()
        if GNU_TIME and last and last[-1].isdigit():
            maxrss, rss_source = int(last[-1]), "gnu-time"
    finally:
        os.unlink(rss_file)
    m = Measurement(
        exit_code=proc.returncode,
        wall_s=wall,
        maxrss_kib=maxrss,
        tree_rss_kib=sampler.rss_peak,
        tmp_peak_bytes=sampler.tmp_peak,
        timed_out=timed_out.is_set(),
        rss_source=rss_source,
        stdout=_read_capped(out),
        stderr=_read_capped(err),
    )
    for f in (out, err):
        if f is not None:
            f.close()
    return m


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Run a command and report wall time, peak RSS, peak TMPDIR.")
    ap.add_argument("--tmpdir", help="fresh directory used as the command's TMPDIR (polled for size)")
    ap.add_argument("--poll", type=float, default=0.05)
    ap.add_argument("--timeout", type=float)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    m = run(cmd, tmpdir=args.tmpdir, timeout=args.timeout, poll=args.poll, capture=False)
    print(json.dumps(m.to_dict()), file=sys.stderr)
    return m.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
