"""Receiver benchmark: warm webhook-handler latency and cold import time (a benchmark, not a test).

    .venv/bin/python bench/receiver.py                      # 1,000 pushes, 200 duplicates, 5 cold runs
    .venv/bin/python bench/receiver.py --pushes 200 --duplicates 50 --cold-runs 3
    .venv/bin/python bench/receiver.py --moto thread        # moto in a thread of this process instead

Warm: a moto server on loopback, the tables/queue/secrets created as template.yaml does, one GitHub
mirror registered for the repository of ``tests/fixtures/webhooks/github/push.json``, and one handler module
loaded with ``gitmirror_dev.lambdas.load_function("webhook")`` (one warm execution environment). Each
invocation gets the real push payload, signed, with a fresh ``X-GitHub-Delivery`` (expect 202); then
redeliveries of already accepted ids (expect 200 duplicate). Per invocation: ``perf_counter`` wall
time around ``lambda_handler`` only (building and signing the event is GitHub's work, not timed), the
number of AWS calls and the time spent inside them (botocore's HTTP send, wrapped).

Cold: fresh interpreters that import ``functions/webhook/app.py`` with the Lambda environment set and
nothing listening at the AWS endpoint (the import must make no AWS call). Measured from spawning the
interpreter to the module being imported; and ``-X importtime`` for the heaviest imports.

Output: a Markdown report on stdout, ``bench/results/receiver-latest.json`` and ``receiver-latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
WEBHOOK_DIR = Path(os.environ.get("BENCH_WEBHOOK_DIR", REPO_ROOT / "tests" / "fixtures" / "webhooks"))
HANDLER = REPO_ROOT / "functions" / "webhook" / "app.py"
PYTHON = sys.executable

GOAL_WARM_P99_MS = 20.0
GOAL_COLD_IMPORT_MS = 400.0
WARMUP_INVOCATIONS = 5

# The environment Lambda gives the deployed function (template.yaml): INFO logs, metrics on, X-Ray
# tracing active. Tracing stays off for the warm run (no X-Ray daemon here; see README).
DEPLOYED_ENV = {"POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_METRICS_DISABLED": "false"}
DEPLOYED = "webhook, as deployed (X-Ray tracing on)"
WEBHOOK_UNTRACED = "webhook, tracing disabled (POWERTOOLS_TRACE_DISABLED=true)"
WORKER_DEPLOYED = "worker, as deployed (X-Ray tracing on)"
BARE_BOTO3 = "bare `import boto3` (the reference)"
# Cold import as a multiple of a bare `python -c 'import boto3'` process timed in the same rounds.
GOAL_COLD_X_BOTO3 = {DEPLOYED: 2.0, WORKER_DEPLOYED: 2.5}
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "gitmirror-webhook",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "LAMBDA_TASK_ROOT": str(REPO_ROOT / "functions" / "webhook"),  # Powertools enables tracing only here
    "POWERTOOLS_TRACE_DISABLED": "false",
}

COLD_CHILD = r"""
import time
t0 = time.perf_counter()
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("webhook_app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t1 = time.perf_counter()
print(json.dumps({"script_start": t0, "imported": t1, "modules": len(sys.modules)}))
"""
# The reference process: what any Python Lambda that talks to AWS imports.
BOTO3_CHILD = r"""
import time
t0 = time.perf_counter()
import boto3
t1 = time.perf_counter()
import json, sys
print(json.dumps({"script_start": t0, "imported": t1, "modules": len(sys.modules)}))
"""


def log(msg: str) -> None:
    print(f"[receiver {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(statistics.fmean(values), 2),
    }


# --------------------------------------------------------------------------------------------
# Warm latency
# --------------------------------------------------------------------------------------------


class AwsCalls:
    """Counts and times every HTTP request botocore sends (all clients, all sessions)."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self.ops: Counter[str] = Counter()
        self.op_seconds: dict[str, list[float]] = {}

    def take(self) -> tuple[int, float, Counter[str]]:
        out = (self.calls, self.seconds, self.ops)
        self.calls, self.seconds, self.ops = 0, 0.0, Counter()
        return out

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from botocore.httpsession import URLLib3Session

        original = URLLib3Session.send
        calls = self

        def send(session: Any, request: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(session, request)
            finally:
                elapsed = time.perf_counter() - t0
                calls.seconds += elapsed
                calls.calls += 1
                target = request.headers.get("X-Amz-Target")
                if isinstance(target, bytes):
                    target = target.decode()
                op = str(target or request.method).rsplit(".", 1)[-1]
                calls.ops[op] += 1
                calls.op_seconds.setdefault(op, []).append(elapsed)

        URLLib3Session.send = send  # type: ignore[method-assign]
        try:
            yield
        finally:
            URLLib3Session.send = original  # type: ignore[method-assign]


@contextlib.contextmanager
def moto_endpoint(mode: str) -> Iterator[str]:
    """moto on loopback: in a thread of this process (gitmirror_dev.moto_stack.moto_server) or its own process."""
    if mode == "thread":
        from gitmirror_dev.moto_stack import moto_server

        with moto_server() as endpoint:
            yield endpoint
        return
    from gitmirror_dev.moto_stack import free_port

    port = free_port()
    code = (
        "import logging, sys, time\n"
        "from moto.server import ThreadedMotoServer\n"
        "logging.getLogger('werkzeug').setLevel(logging.ERROR)\n"
        f"s = ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False)\n"
        "s.start(); print('ready', flush=True); sys.stdin.read(); s.stop()\n"
    )
    proc = subprocess.Popen([PYTHON, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("moto server process did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def register_mirror(webhook_secret: str) -> str:
    """One GitHub mirror for push.json's repository (what tests/support/service.py:add_mirror does)."""
    from gitmirror.adapters.aws.mirror_table import MirrorStore
    from gitmirror.manage.mirrors import create_mirror
    from gitmirror.records import MirrorSpec
    from gitmirror.settings import CliSettings, load
    from gitmirror_dev.moto_stack import put_secret

    settings = load(CliSettings)
    repo = json.loads((WEBHOOK_DIR / "github" / "push.json").read_bytes())["repository"]
    names = {k: f"{settings.secrets_prefix}bench/{k}" for k in ("source", "target", "webhook")}
    for k in ("source", "target"):
        put_secret(names[k], json.dumps({"username": f"bench-{k}", "token": secrets.token_hex(16)}))
    put_secret(names["webhook"], webhook_secret)
    spec = MirrorSpec(
        source_url="http://127.0.0.1:9/source.git",
        url="http://127.0.0.1:9/target.git",
        provider="github",  # type: ignore[arg-type]
        source_repo_id=str(repo["id"]),
        source_full_name=repo["full_name"],
        source_secret=names["source"],
        target_secret=names["target"],
        webhook_secret=names["webhook"],
    )
    store = MirrorStore(settings.mirrors_table, settings.runs_table)
    return create_mirror(spec, store, settings.policy, settings.secrets_prefix).id


def run_warm(pushes: int, duplicates: int, moto_mode: str, profile: str | None = None) -> dict[str, Any]:
    from gitmirror.settings import CliSettings, load
    from gitmirror_dev.lambdas import LambdaContext, http_event, load_function
    from gitmirror_dev.moto_stack import create_resources, local_environment
    from gitmirror_dev.samples import distinct_github_push
    from gitmirror_dev.signing import sign_github

    secret = secrets.token_hex(20)
    saved_env = dict(os.environ)
    saved_stdout = sys.stdout
    calls = AwsCalls()
    log_file = tempfile.TemporaryFile(mode="w+")
    try:
        with moto_endpoint(moto_mode) as endpoint:
            os.environ.update(local_environment(endpoint, f"bench{uuid.uuid4().hex[:8]}"))
            os.environ.update(DEPLOYED_ENV)
            created = create_resources(load(CliSettings))
            mirror_id = register_mirror(secret)
            import boto3

            sqs = boto3.client("sqs")
            sent = 0
            profiler = None
            # The handler's JSON logs and EMF metrics go to stdout, as in Lambda; keep them off ours.
            sys.stdout = log_file
            module = load_function("webhook")

            def invoke(delivery: str) -> tuple[float, int, dict[str, Any], int, float, Counter[str]]:
                # each push its own body (bodies are deduplicated by signature); redeliveries repeat it
                body = distinct_github_push(delivery)
                headers = {
                    "Content-Type": "application/json",
                    "User-Agent": "GitHub-Hookshot/044aadd",
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": delivery,
                    "X-Hub-Signature-256": sign_github(body, secret),
                }
                event = http_event("POST", "/webhooks/github", headers, body)
                context = LambdaContext(timeout_seconds=10)
                calls.take()
                if profiler is not None:
                    profiler.enable()
                t0 = time.perf_counter()
                response = module.lambda_handler(event, context)
                elapsed = (time.perf_counter() - t0) * 1000
                if profiler is not None:
                    profiler.disable()
                n, aws_s, ops = calls.take()
                # The worker keeps the queue short; moto's FIFO SendMessage is O(queue depth) (35 ms at
                # 1,000 messages) where SQS is not. Consume what was sent, untimed.
                nonlocal sent
                sent += ops["SendMessage"]
                got = sqs.receive_message(QueueUrl=created["queue_url"], MaxNumberOfMessages=10)
                for m in got.get("Messages", []):
                    sqs.delete_message(QueueUrl=created["queue_url"], ReceiptHandle=m["ReceiptHandle"])
                calls.take()
                return elapsed, int(response["statusCode"]), json.loads(response["body"]), n, aws_s, ops

            with calls.installed():
                first = invoke(str(uuid.uuid4()))
                calls.op_seconds.clear()
                accepted_ids = [str(uuid.uuid4()) for _ in range(WARMUP_INVOCATIONS + pushes)]
                samples: dict[str, list[tuple[float, int, dict[str, Any], int, float, Counter[str]]]] = {
                    "accepted": [],
                    "duplicate": [],
                }
                for i, delivery in enumerate(accepted_ids):
                    if profile and i == WARMUP_INVOCATIONS:
                        import cProfile

                        profiler = cProfile.Profile()
                    out = invoke(delivery)
                    if i >= WARMUP_INVOCATIONS:
                        samples["accepted"].append(out)
                if profiler is not None and profile:
                    profiler.dump_stats(profile)
                    profiler = None
                for delivery in accepted_ids[WARMUP_INVOCATIONS : WARMUP_INVOCATIONS + duplicates]:
                    samples["duplicate"].append(invoke(delivery))
            sys.stdout = saved_stdout
            for op in ("ReceiveMessage", "DeleteMessage"):
                calls.op_seconds.pop(op, None)
    finally:
        sys.stdout = saved_stdout
        os.environ.clear()
        os.environ.update(saved_env)
        log_file.seek(0)
        log_lines = sum(1 for _ in log_file)
        log_file.close()

    expected = {"accepted": (202, False), "duplicate": (200, True)}
    cases: dict[str, Any] = {}
    for name, rows in samples.items():
        want_status, want_dup = expected[name]
        statuses = Counter(str(r[1]) for r in rows)
        bad = [r for r in rows if r[1] != want_status or bool(r[2].get("duplicate")) != want_dup]
        ops: Counter[str] = Counter()
        for r in rows:
            ops.update(r[5])
        cases[name] = {
            **summarize_ms([r[0] for r in rows]),
            "expected_status": want_status,
            "statuses": dict(statuses),
            "unexpected": len(bad),
            "unexpected_sample": [r[2] for r in bad[:3]],
            "aws_calls_per_invocation": round(statistics.fmean(r[3] for r in rows), 2),
            "aws_ops_per_invocation": {k: round(v / len(rows), 2) for k, v in sorted(ops.items())},
            "aws_ms_p50": round(percentile([r[4] * 1000 for r in rows], 50), 2),
            "own_ms_p50": round(percentile([r[0] - r[4] * 1000 for r in rows], 50), 2),
            "own_ms_p99": round(percentile([r[0] - r[4] * 1000 for r in rows], 99), 2),
        }
    return {
        "moto": moto_mode,
        "mirror_id": mirror_id,
        "payload": "github/push.json",
        "payload_bytes": len(distinct_github_push("size")),
        "warmup_invocations": WARMUP_INVOCATIONS,
        "first_invocation": {
            "ms": round(first[0], 2),
            "status": first[1],
            "aws_calls": first[3],
            "aws_ms": round(first[4] * 1000, 2),
        },
        "cases": cases,
        "aws_op_ms": {
            op: {"n": len(v), **{k: round(percentile(v, q) * 1000, 2) for k, q in (("p50", 50), ("p99", 99))}}
            for op, v in sorted(calls.op_seconds.items())
        },
        "jobs_enqueued": sent,
        "handler_stdout_lines": log_lines,
        "env": {**DEPLOYED_ENV, "POWERTOOLS_TRACE_DISABLED": "true"},
    }


# --------------------------------------------------------------------------------------------
# Cold import
# --------------------------------------------------------------------------------------------


def cold_env(tracing: bool, function: str = "webhook") -> dict[str, str]:
    """The function's environment inside Lambda (Powertools and the X-Ray SDK behave differently outside)."""
    from gitmirror_dev.moto_stack import local_environment

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON", "_X_AMZN"))
    }
    # Nothing listens on port 9: an AWS call during import would fail loudly.
    env.update(local_environment("http://127.0.0.1:9", "bench"))
    env.update(DEPLOYED_ENV)
    env.update(LAMBDA_ENV)
    env["AWS_LAMBDA_FUNCTION_NAME"] = f"gitmirror-{function}"
    env["LAMBDA_TASK_ROOT"] = str(REPO_ROOT / "functions" / function)
    env["POWERTOOLS_TRACE_DISABLED"] = "false" if tracing else "true"
    return env


@dataclass(frozen=True)
class ColdConfig:
    """One kind of fresh interpreter: a handler file imported under its function's environment, or the
    bare `import boto3` every ratio is taken against."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]


def cold_configs() -> list[ColdConfig]:
    handler = lambda name: str(REPO_ROOT / "functions" / name / "app.py")  # noqa: E731
    return [
        ColdConfig(BARE_BOTO3, ("-c", BOTO3_CHILD), cold_env(True)),
        ColdConfig(DEPLOYED, ("-c", COLD_CHILD, handler("webhook")), cold_env(True)),
        ColdConfig(WEBHOOK_UNTRACED, ("-c", COLD_CHILD, handler("webhook")), cold_env(False)),
        ColdConfig(WORKER_DEPLOYED, ("-c", COLD_CHILD, handler("worker")), cold_env(True, "worker")),
    ]


def cold_once(config: ColdConfig) -> dict[str, float]:
    t_spawn = time.perf_counter()
    res = subprocess.run([PYTHON, *config.argv], env=config.env, capture_output=True, text=True, timeout=120)
    t_exit = time.perf_counter()
    if res.returncode != 0:
        raise RuntimeError(f"cold import failed ({config.name}): {res.stderr.strip()[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes.
    return {
        "start_to_imported_ms": (out["imported"] - t_spawn) * 1000,
        "import_ms": (out["imported"] - out["script_start"]) * 1000,
        "interpreter_ms": (out["script_start"] - t_spawn) * 1000,
        "process_ms": (t_exit - t_spawn) * 1000,
        "modules": out["modules"],
    }


_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def importtime_once(config: ColdConfig) -> list[tuple[str, int, int, int]]:
    """(module, self_us, cumulative_us, depth) of every import, from ``python -X importtime``."""
    res = subprocess.run(
        [PYTHON, "-X", "importtime", *config.argv],
        env=config.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        raise RuntimeError(f"importtime run failed ({config.name}): {res.stderr.strip()[-2000:]}")
    rows = []
    for line in res.stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            rows.append((m.group(4), int(m.group(1)), int(m.group(2)), len(m.group(3)) // 2))
    return rows


def heaviest_imports(config: ColdConfig, runs: int) -> dict[str, Any]:
    """Self time per top-level package and the top modules by cumulative time, median over runs."""
    per_package: dict[str, list[float]] = {}
    per_module: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        totals: Counter[str] = Counter()
        for module, self_us, cum_us, _depth in importtime_once(config):
            totals[module.split(".", 1)[0]] += self_us
            per_module.setdefault(module, []).append((cum_us / 1000, self_us / 1000))
        for pkg, us in totals.items():
            per_package.setdefault(pkg, []).append(us / 1000)
    packages = sorted(((pkg, statistics.median(v)) for pkg, v in per_package.items()), key=lambda x: -x[1])
    modules = sorted(
        (
            (m, statistics.median(c for c, _ in v), statistics.median(s for _, s in v))
            for m, v in per_module.items()
        ),
        key=lambda x: -x[1],
    )
    return {
        "top_packages_self_ms": [{"package": p, "self_ms": round(ms, 1)} for p, ms in packages[:10]],
        "top_imports_cumulative_ms": [
            {"module": m, "cumulative_ms": round(c, 1), "self_ms": round(s, 1)} for m, c, s in modules[:10]
        ],
        "total_self_ms": round(sum(ms for _, ms in packages), 1),
    }


def run_cold(runs: int, importtime_runs: int) -> dict[str, Any]:
    """Every configuration once per round, rounds one after another: the machine's load at any moment
    weighs on the handlers and on the bare boto3 import alike, so their ratio holds on a busy machine."""
    configs = cold_configs()
    for config in configs:
        cold_once(config)  # untimed: byte-compile anything not yet compiled, warm the page cache
    samples: dict[str, list[dict[str, float]]] = {c.name: [] for c in configs}
    for _ in range(runs):
        for config in configs:
            samples[config.name].append(cold_once(config))
    out: dict[str, Any] = {}
    for name, got in samples.items():
        out[name] = {
            "runs": runs,
            **{
                f"{key}_median": round(statistics.median(s[key] for s in got), 1)
                for key in ("start_to_imported_ms", "import_ms", "interpreter_ms", "process_ms")
            },
            "start_to_imported_ms_min": round(min(s["start_to_imported_ms"] for s in got), 1),
            "start_to_imported_ms_max": round(max(s["start_to_imported_ms"] for s in got), 1),
            "modules": int(statistics.median(s["modules"] for s in got)),
            "samples": [{k: round(v, 1) for k, v in s.items()} for s in got],
        }
    bare = out[BARE_BOTO3]["start_to_imported_ms_median"]
    for name, c in out.items():
        c["x_bare_boto3"] = round(c["start_to_imported_ms_median"] / bare, 2)
        log(
            f"cold import, {name}: median {c['start_to_imported_ms_median']} ms from interpreter start "
            f"({c['import_ms_median']} ms of it importing), {c['x_bare_boto3']}x the bare boto3 import"
        )
    by_name = {c.name: c for c in configs}
    return {
        "configs": out,
        "importtime_runs": importtime_runs,
        "heaviest": {
            name: heaviest_imports(by_name[name], importtime_runs) for name in (DEPLOYED, WORKER_DEPLOYED)
        },
        "note": "page cache warm and .pyc files present (Lambda ships byte-compiled packages but reads them "
        "from its own storage on a cold start)",
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def goal_names() -> list[str]:
    """The receiver goals' names, for a report where the receiver benchmark did not run."""
    return [
        f"receiver warm p99 ≤ {GOAL_WARM_P99_MS:.0f} ms",
        f"receiver cold import ≤ {GOAL_COLD_IMPORT_MS:.0f} ms",
        *(
            f"{name.split(',', 1)[0]} cold import ≤ {x}x a bare `import boto3` process"
            for name, x in GOAL_COLD_X_BOTO3.items()
        ),
    ]


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The receiver goals: warm p99 ≤ 20 ms, cold import ≤ 400 ms and as a multiple of a bare boto3 import."""
    out = []
    warm = result.get("warm")
    if warm:
        p99 = warm["cases"]["accepted"]["p99_ms"]
        out.append(
            {
                "goal": f"receiver warm p99 ≤ {GOAL_WARM_P99_MS:.0f} ms (signed push → 202, moto)",
                "measured": f"{p99:.1f} ms (p50 {warm['cases']['accepted']['p50_ms']:.1f} ms, "
                f"n={warm['cases']['accepted']['n']})",
                "pass": p99 <= GOAL_WARM_P99_MS,
            }
        )
    cold = result.get("cold")
    if cold:
        deployed = cold["configs"][DEPLOYED]
        ms = deployed["start_to_imported_ms_median"]
        out.append(
            {
                "goal": f"receiver cold import ≤ {GOAL_COLD_IMPORT_MS:.0f} ms (interpreter start → handler "
                "imported)",
                "measured": f"{ms:.0f} ms (median of {deployed['runs']}, tracing on)",
                "pass": ms <= GOAL_COLD_IMPORT_MS,
            }
        )
        bare = cold["configs"][BARE_BOTO3]["start_to_imported_ms_median"]
        for name, limit in GOAL_COLD_X_BOTO3.items():
            c = cold["configs"][name]
            function = name.split(",", 1)[0]
            out.append(
                {
                    "goal": f"{function} cold import ≤ {limit}x a bare `import boto3` process (same rounds)",
                    "measured": f"{c['x_bare_boto3']:.2f}x ({c['start_to_imported_ms_median']:.0f} ms vs "
                    f"{bare:.0f} ms, tracing on)",
                    "pass": c["x_bare_boto3"] <= limit,
                }
            )
    return out


def render_markdown(result: dict[str, Any], heading: str = "#", goals_section: bool = True) -> str:
    m = result["machine"]
    lines = [
        f"{heading} Receiver benchmark {result['timestamp']}",
        "",
        f"Machine: {m['nproc']} CPUs, Python {m['python']}, {m['platform']}. "
        "Lambda runs python3.12 on arm64 with 256 MB, which gives about 1/7 of a vCPU: expect it to be slower.",
        "",
    ]
    warm = result.get("warm")
    if warm:
        acc = warm["cases"]["accepted"]
        lines += [
            f"{heading}# Warm handler latency",
            "",
            f"One warm handler; real signed GitHub push payloads ({warm['payload_bytes']} bytes); moto server "
            f"on loopback ({'a thread of the benchmark process' if warm['moto'] == 'thread' else 'its own process'}). "
            f"{warm['warmup_invocations']} warm-up invocations are not counted. "
            "Logs at INFO and EMF metrics on, as deployed; X-Ray tracing off.",
            "",
            "| case | n | p50 ms | p90 ms | p99 ms | max ms | AWS calls each | in AWS calls p50 ms "
            "| handler's own p50 / p99 ms | status |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, label in (("accepted", "new delivery → 202"), ("duplicate", "redelivery → 200 duplicate")):
            c = warm["cases"][name]
            ok = "ok" if not c["unexpected"] else f"{c['unexpected']} unexpected: {c['statuses']}"
            lines.append(
                f"| {label} | {c['n']} | {c['p50_ms']:.1f} | {c['p90_ms']:.1f} | {c['p99_ms']:.1f} "
                f"| {c['max_ms']:.1f} | {c['aws_calls_per_invocation']:g} | {c['aws_ms_p50']:.1f} "
                f"| {c['own_ms_p50']:.1f} / {c['own_ms_p99']:.1f} | {ok} |"
            )
        f = warm["first_invocation"]
        ops = ", ".join(f"{k} {v:g}" for k, v in acc["aws_ops_per_invocation"].items())
        op_ms = ", ".join(f"{k} {v['p50']:.1f} / {v['p99']:.1f}" for k, v in warm["aws_op_ms"].items())
        lines += [
            "",
            f"First invocation after import (creates the boto3 clients, reads the webhook secret): "
            f"{f['ms']:.1f} ms, {f['aws_calls']} AWS calls. AWS calls per accepted delivery: {ops}. "
            f"{warm['jobs_enqueued']} jobs enqueued in all. Time per AWS call in moto, "
            f"p50 / p99 ms: {op_ms}.",
            "",
            "The queue is emptied after every invocation (untimed), as the worker would consume it: moto's "
            "FIFO SendMessage slows down linearly with the queue's depth, SQS does not. "
            "The latency includes moto's: every AWS call is a real HTTP request to moto on loopback (a new "
            "connection each time: moto's server closes it). Real DynamoDB and SQS take single-digit to low "
            "tens of milliseconds per call from inside the region, so on AWS the total is mostly these calls, "
            "made one after another, and can be higher or lower than here. "
            "\"handler's own\" is the wall time minus the time inside botocore's HTTP send.",
            "",
        ]
    cold = result.get("cold")
    if cold:
        lines += [
            f"{heading}# Cold import",
            "",
            "Fresh interpreters import a handler file (`functions/<name>/app.py`) with the function's "
            "environment and no AWS endpoint listening, or run a bare `import boto3` (the reference: what any "
            "Python Lambda that calls AWS imports). The configurations take turns, one run each per round, so "
            "the machine's load weighs on all of them alike. Start → imported = from spawning the interpreter "
            f"to the end of the import; {cold['note']}.",
            "",
            "| configuration | runs | start → imported median ms (min-max) | x bare boto3 | of which importing ms "
            "| interpreter start ms | modules loaded |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, c in cold["configs"].items():
            lines.append(
                f"| {name} | {c['runs']} | {c['start_to_imported_ms_median']:.0f} "
                f"({c['start_to_imported_ms_min']:.0f}-{c['start_to_imported_ms_max']:.0f}) "
                f"| {c['x_bare_boto3']:.2f} | {c['import_ms_median']:.0f} | {c['interpreter_ms_median']:.0f} "
                f"| {c['modules']} |"
            )
        for name, heavy in cold["heaviest"].items():
            lines += [
                "",
                f"Heaviest imports of the {name} (`python -X importtime`, median of "
                f"{cold['importtime_runs']}; importtime itself slows imports down):",
                "",
                "| top-level package | self ms, all its modules |",
                "|---|---|",
                *(f"| {p['package']} | {p['self_ms']:.1f} |" for p in heavy["top_packages_self_ms"]),
                "",
                "| module | cumulative ms | self ms |",
                "|---|---|---|",
                *(
                    f"| {m['module']} | {m['cumulative_ms']:.1f} | {m['self_ms']:.1f} |"
                    for m in heavy["top_imports_cumulative_ms"]
                ),
            ]
        lines.append("")
    gl = goals(result) if goals_section else []
    if gl:
        lines += [f"{heading}# Receiver goals", "", "| goal | measured | result |", "|---|---|---|"]
        lines += [f"| {g['goal']} | {g['measured']} | {'pass' if g['pass'] else 'FAIL'} |" for g in gl]
        lines.append("")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run(
    pushes: int = 1000,
    duplicates: int = 200,
    cold_runs: int = 5,
    importtime_runs: int = 3,
    moto: str = "process",
    warm: bool = True,
    cold: bool = True,
    profile: str | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "machine": machine(),
        "options": {
            "pushes": pushes,
            "duplicates": duplicates,
            "cold_runs": cold_runs,
            "importtime_runs": importtime_runs,
            "moto": moto,
        },
    }
    if cold:
        log(f"cold import: {cold_runs} runs per configuration, {importtime_runs} importtime runs")
        result["cold"] = run_cold(cold_runs, importtime_runs)
    if warm:
        log(f"warm: {pushes} signed pushes + {duplicates} redeliveries, moto in a {moto}")
        t0 = time.monotonic()
        result["warm"] = run_warm(pushes, duplicates, moto, profile)
        acc = result["warm"]["cases"]["accepted"]
        log(f"warm done in {time.monotonic() - t0:.1f}s: p50 {acc['p50_ms']} ms, p99 {acc['p99_ms']} ms")
    result["goals"] = goals(result)
    return result


def ok(result: dict[str, Any]) -> bool:
    """Every invocation answered as expected (the goals are reported, not enforced)."""
    warm = result.get("warm")
    return not warm or all(c["unexpected"] == 0 for c in warm["cases"].values())


def save(result: dict[str, Any], md: str) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    for name, text in (
        ("receiver-latest.json", json.dumps(result, indent=2) + "\n"),
        ("receiver-latest.md", md),
    ):
        tmp = RESULTS_DIR / (name + ".tmp")
        tmp.write_text(text)
        tmp.replace(RESULTS_DIR / name)
    log(f"wrote {RESULTS_DIR.relative_to(REPO_ROOT)}/receiver-latest.json, receiver-latest.md")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="receiver benchmark: warm handler latency and cold import time")
    ap.add_argument(
        "--pushes", type=int, default=1000, help="signed push deliveries, each new (default 1000)"
    )
    ap.add_argument("--duplicates", type=int, default=200, help="redeliveries of accepted ids (default 200)")
    ap.add_argument(
        "--cold-runs", type=int, default=5, help="fresh interpreters per configuration (default 5)"
    )
    ap.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs (default 3)")
    ap.add_argument(
        "--moto",
        choices=("thread", "process"),
        default="process",
        help="where moto runs (default: its own process, as AWS is not inside the function's process; "
        "a thread shares this process's GIL with the handler and slows both)",
    )
    ap.add_argument("--no-warm", action="store_true", help="skip the warm latency run")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold import runs")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/receiver-latest.*")
    ap.add_argument("--json-out", help="also write the JSON result to this path")
    ap.add_argument(
        "--profile",
        metavar="PATH",
        help="cProfile the accepted deliveries' handler calls into PATH (pstats; moto's thread is not "
        "profiled); read it with: python -m pstats PATH",
    )
    args = ap.parse_args(argv)
    if args.duplicates > args.pushes:
        ap.error("--duplicates cannot exceed --pushes")
    if min(args.pushes, args.cold_runs, args.importtime_runs) < 1 or args.duplicates < 1:
        ap.error("counts must be >= 1")
    result = run(
        args.pushes,
        args.duplicates,
        args.cold_runs,
        args.importtime_runs,
        args.moto,
        warm=not args.no_warm,
        cold=not args.no_cold,
        profile=args.profile,
    )
    md = render_markdown(result)
    print(md)
    if not args.no_save:
        save(result, md)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
