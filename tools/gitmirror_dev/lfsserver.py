"""A giftless Git LFS server process for tests and the local stack; run by `lfsmount.LfsMount`.

Runs under the interpreter of its own virtualenv (.venv-lfs, see scripts/setup_lfs_venv.sh), so it
imports nothing from gitmirror. `python lfsserver.py STORAGE_DIR` prints the port it listens on
(127.0.0.1) and serves until its standard input closes (its parent went away).

Authentication: the git test server in front checks the repository's Basic credentials and names the
user in X-Gitmirror-Lfs-User (a header it never passes on from clients); action links carry giftless'
own JWTs. giftless 0.6.2 needs an identity with explicit access to the organization and repository
(a global grant does not cover its per-object checks), hence one identity per request.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from typing import Any

FRONT_USER_HEADER = "X-Gitmirror-Lfs-User"


def front_identity(request: Any) -> Any:
    from giftless.auth.identity import DefaultIdentity, Permission

    user = request.headers.get(FRONT_USER_HEADER)
    if not user:
        return None
    identity = DefaultIdentity(name=user, id=user)
    args = request.view_args or {}
    identity.allow(organization=args.get("organization"), repo=args.get("repo"), permissions=Permission.all())
    return identity


def main(argv: list[str]) -> int:
    storage = os.path.abspath(argv[1])
    os.makedirs(storage, exist_ok=True)
    os.chdir(storage)  # giftless reads a .env file from the working directory when imported
    from giftless.app import init_app
    from werkzeug.serving import make_server

    app = init_app(
        additional_config={
            "LEGACY_ENDPOINTS": False,
            "AUTH_PROVIDERS": ["__main__:front_identity"],
            "PRE_AUTHORIZED_ACTION_PROVIDER": {
                "factory": "giftless.auth.jwt:factory",
                "options": {
                    "algorithm": "HS256",
                    "private_key": secrets.token_hex(32),
                    "default_lifetime": 900,
                },
            },
            "TRANSFER_ADAPTERS": {
                "basic": {
                    "factory": "giftless.transfer.basic_streaming:factory",
                    "options": {
                        "storage_class": "giftless.storage.local_storage:LocalStorage",
                        "storage_options": {"path": storage},
                        "action_lifetime": 900,
                    },
                }
            },
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.server_port, flush=True)

    def watch_parent() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
