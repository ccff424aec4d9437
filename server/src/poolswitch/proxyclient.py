"""How the CLI's client commands (`status`, `metrics`, `keys`, `reload`) reach a running proxy:
its base URL (--url, else --config's listen address, else $POOLSWITCH_URL, else 127.0.0.1:8080),
a token, and one HTTP exchange whose failure is one line on stderr (the envelope's message, never
a traceback). Standard library only: the CLI needs no HTTP client of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from poolswitch.config import Config, load_config
from poolswitch.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8080"
URL_HELP = "the proxy's base URL (default: $POOLSWITCH_URL, else http://127.0.0.1:8080)"


def load_or_say(path: str) -> Config | None:
    """The config at `path`, or None after one `config error:` line per problem on stderr."""
    try:
        return load_config(path)
    except ConfigError as err:
        for problem in err.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return None


def base_url(args: argparse.Namespace) -> str | None:
    """The proxy's base URL from --url, --config or $POOLSWITCH_URL (None: the config is bad,
    said on stderr)."""
    if args.url:
        return str(args.url).rstrip("/")
    if args.config:
        config = load_or_say(args.config)
        if config is None:
            return None
        host = "127.0.0.1" if config.listen_host in ("0.0.0.0", "::") else config.listen_host
        return f"http://{host}:{config.listen_port}"
    return (os.environ.get("POOLSWITCH_URL") or DEFAULT_URL).rstrip("/")


def admin_token(args: argparse.Namespace) -> str | None:
    """--token, else $POOLSWITCH_ADMIN_TOKEN, else `admin_token` from --config; None after a
    message on stderr."""
    token = args.token or os.environ.get("POOLSWITCH_ADMIN_TOKEN")
    if not token and args.config:
        config = load_or_say(args.config)
        token = config.admin_token if config else None
    if not token:
        print(
            "error: an admin token is needed: --token, POOLSWITCH_ADMIN_TOKEN or admin_token "
            "in --config",
            file=sys.stderr,
        )
    return token or None


def admin_target(args: argparse.Namespace) -> tuple[str, str] | None:
    """(base URL, admin token) for an admin command; None after a message on stderr."""
    base = base_url(args)
    if base is None:
        return None
    token = admin_token(args)
    return None if token is None else (base, token)


def fetch(
    url: str,
    method: str = "GET",
    token: str | None = None,
    body: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> bytes | None:
    """The answer's body, or None after a message on stderr (refused or unreachable)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            answer: bytes = resp.read()
            return answer
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        print(f"error: {message}", file=sys.stderr)
        return None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"error: cannot reach the proxy at {url}: {reason}", file=sys.stderr)
        return None
