"""A Git LFS batch API client: `POST <repository>.git/info/lfs/objects/batch`, then the actions it names.

The Basic credentials are the repository's (or the mirror's separate LFS ones); an action brings its
own `header` (a pre-signed token, as giftless, GitHub and GitLab do) and gets the credentials only when
it names none and points at the LFS endpoint's own host. Every URL, action links included, goes through
the same network policy as git traffic, and redirects are refused like git's.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3

from gitmirror.errors import AuthError, MirrorError, ProtocolFailure, TransientError, UsageError
from gitmirror.mirror.credentials import Anonymous, CredentialProvider
from gitmirror.mirror.lfs.pointers import LfsPointer
from gitmirror.mirror.transport import classify_error
from gitmirror.mirror.transport.http_client import USER_AGENT
from gitmirror.mirror.urls import NetworkPolicy, RemoteURL, parse_remote
from gitmirror.scrub import register_secret, scrub

MEDIA_TYPE = "application/vnd.git-lfs+json"
# the batch API's usual limit per request (git-lfs' lfs.transfer.batchSize default)
BATCH_SIZE = 100
# an action that expires within this many seconds is asked for again before it is used
EXPIRY_MARGIN_SECONDS = 30.0
_ERROR_BODY = 400


class LfsUnavailable(MirrorError):
    """The batch endpoint answered 404: no Git LFS server there (or, on some servers, none of the
    objects asked for)."""

    kind = "lfs_unavailable"


@dataclass(frozen=True)
class LfsAction:
    href: str
    header: dict[str, str] = field(default_factory=dict)
    expires_at: float | None = None  # time.monotonic() deadline

    def expiring(self) -> bool:
        return self.expires_at is not None and self.expires_at - time.monotonic() < EXPIRY_MARGIN_SECONDS


@dataclass(frozen=True)
class ObjectAnswer:
    """The server's answer for one object: the actions to take (none: nothing to do), or an error."""

    pointer: LfsPointer
    actions: dict[str, LfsAction] = field(default_factory=dict)
    error_code: int | None = None
    error_message: str = ""


def lfs_endpoint(remote: RemoteURL) -> str:
    """The Git LFS specification's default endpoint: `<url>.git/info/lfs` (`.git` added if missing)."""
    url = remote.url.rstrip("/")
    if not url.endswith(".git"):
        url += ".git"
    return url + "/info/lfs"


def _deadline(action: dict[str, Any], now_wall: dt.datetime, now_mono: float) -> float | None:
    expires_in = action.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return now_mono + float(expires_in)
    expires_at = action.get("expires_at")
    if isinstance(expires_at, str) and expires_at:
        try:
            when = dt.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None or when.year < 1971:  # "0001-01-01T00:00:00Z" means no expiry
            return None
        return now_mono + (when - now_wall).total_seconds()
    return None


class LfsServer:
    """One side's LFS server. Thread-safe: transfers of one batch run in parallel."""

    def __init__(
        self,
        remote: RemoteURL,
        credentials: CredentialProvider | None = None,
        *,
        policy: NetworkPolicy | None = None,
        connect_timeout: float = 15.0,
        read_timeout: float = 120.0,
        parallel: int = 4,
    ) -> None:
        self.remote = remote
        self.endpoint = lfs_endpoint(remote)
        self._credentials = credentials or Anonymous()
        self._policy = policy
        self.http = urllib3.PoolManager(
            num_pools=8,
            maxsize=parallel,
            headers={"User-Agent": USER_AGENT},
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
        )

    def _basic(self) -> dict[str, str]:
        creds = self._credentials.credentials_for(self.remote)
        if creds is None:
            return {}
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")
        register_secret(token)
        return {"Authorization": f"Basic {token}"}

    def check(self, url: str) -> None:
        """Raise UsageError unless the deployment may talk to `url` (action links included)."""
        if self._policy is None:
            return
        remote = parse_remote(url.split("?", 1)[0]) if "://" in url else None
        if remote is None or remote.is_local:
            raise UsageError("an LFS server answered with a link that is not an http(s) URL")
        self._policy.check_url(remote)

    def request(self, method: str, url: str, **kwargs: Any) -> urllib3.BaseHTTPResponse:
        """One HTTP request under the policy, without redirects; network failures become MirrorErrors."""
        self.check(url)
        try:
            resp = self.http.request(method, url, redirect=False, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise classify_error(exc, url.split("?", 1)[0]) from None
        if 300 <= resp.status < 400:
            resp.release_conn()
            raise ProtocolFailure(
                f"{scrub(url.split('?', 1)[0])} redirected (HTTP {resp.status}); LFS redirects are not followed"
            )
        return resp

    def action_headers(self, action: LfsAction) -> dict[str, str]:
        headers = dict(action.header)
        if not any(k.lower() == "authorization" for k in headers):
            here, there = urlsplit(self.endpoint), urlsplit(action.href)
            if (here.scheme, here.netloc) == (there.scheme, there.netloc):
                headers.update(self._basic())
        return headers

    def batch(self, operation: str, pointers: Iterable[LfsPointer]) -> dict[LfsPointer, ObjectAnswer]:
        """The batch answer for `pointers` ("upload" or "download"), by pointer. Raises LfsUnavailable
        on 404, AuthError on 401/403, TransientError on 429/5xx (after a retry), ProtocolFailure else."""
        wanted = list(pointers)
        body = json.dumps(
            {
                "operation": operation,
                "transfers": ["basic"],
                "objects": [{"oid": p.oid, "size": p.size} for p in wanted],
                "hash_algo": "sha256",
            }
        ).encode()
        url = self.endpoint + "/objects/batch"
        headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE, **self._basic()}
        for attempt in range(3):
            resp = self.request("POST", url, body=body, headers=headers, preload_content=True)
            if resp.status in (429, 500, 502, 503, 504) and attempt < 2:
                time.sleep(0.5 * 2**attempt)
                continue
            break
        where = scrub(url)
        if resp.status == 404:
            raise LfsUnavailable(f"{where} answered HTTP 404")
        if resp.status in (401, 403):
            raise AuthError(
                f"the LFS server {where} refused the credentials (HTTP {resp.status}): "
                "check the repository's (or the mirror's LFS) credentials"
            )
        if resp.status in (429, 500, 502, 503, 504):
            raise TransientError(f"the LFS server {where} answered HTTP {resp.status}; will retry")
        if resp.status != 200:
            raise ProtocolFailure(
                f"the LFS server {where} answered HTTP {resp.status}: {_message(resp.data)}"
            )
        return self._answers(resp.data, wanted, where)

    def _answers(self, data: bytes, wanted: list[LfsPointer], where: str) -> dict[LfsPointer, ObjectAnswer]:
        now_wall, now_mono = dt.datetime.now(dt.UTC), time.monotonic()
        try:
            payload = json.loads(data)
            objects = payload["objects"]
            if not isinstance(objects, list):
                raise TypeError("objects is not a list")
            transfer = payload.get("transfer", "basic")
            if transfer not in (None, "basic"):
                raise ValueError(f"unsupported transfer {transfer!r}")
            by_id = {p.oid: p for p in wanted}
            answers: dict[LfsPointer, ObjectAnswer] = {}
            for item in objects:
                pointer = by_id.get(str(item.get("oid")))
                if pointer is None:
                    continue
                error = item.get("error")
                if isinstance(error, dict):
                    code = int(error.get("code") or 0)
                    answers[pointer] = ObjectAnswer(
                        pointer, error_code=code, error_message=str(error.get("message", ""))
                    )
                    continue
                actions = {
                    name: LfsAction(
                        href=str(action["href"]),
                        header={str(k): str(v) for k, v in (action.get("header") or {}).items()},
                        expires_at=_deadline(action, now_wall, now_mono),
                    )
                    for name, action in (item.get("actions") or {}).items()
                    if isinstance(action, dict)
                }
                answers[pointer] = ObjectAnswer(pointer, actions=actions)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ProtocolFailure(f"the LFS server {where} sent an unreadable batch answer: {exc}") from None
        return answers

    def stream(self, action: LfsAction, chunk: int) -> tuple[urllib3.BaseHTTPResponse, Iterator[bytes]]:
        """GET a download action's body as a stream of chunks."""
        headers = {"Accept": "application/octet-stream", **self.action_headers(action)}
        resp = self.request("GET", action.href, headers=headers, preload_content=False)
        return resp, resp.stream(chunk)


def _message(data: bytes) -> str:
    try:
        payload = json.loads(data)
        text = str(payload.get("message") or payload)
    except (ValueError, AttributeError):
        text = data.decode("utf-8", "replace")
    return scrub(" ".join(text.split()))[:_ERROR_BODY]
