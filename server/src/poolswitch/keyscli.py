"""`poolswitch keys …`: the admin API (admin.py) from the command line.

    poolswitch keys list
    poolswitch keys enable  ID
    poolswitch keys disable ID [--for 10m|90s|1h|1h30m]
    poolswitch keys reset   ID [--counters]
    poolswitch keys test    ID [--apply] [--path /v1/models]
    poolswitch keys drain   ID
      each with [--pool P] [--json] [--url URL | --config FILE] [--token T]

The token: --token, else $POOLSWITCH_ADMIN_TOKEN, else `admin_token` from --config. `--json`
prints the API's answer as it is; without it, a table (list) or one line. Exit codes: 0 done,
1 the proxy refused (its envelope's message on stderr) or cannot be reached, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from poolswitch.admin import ACTIONS, ADMIN_PREFIX
from poolswitch.proxyclient import URL_HELP, admin_target, fetch

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """`90s`, `10m`, `1h30m`, `2d` or plain seconds, as seconds (argparse type)."""
    parts = list(_DURATION.finditer(text.strip().lower()))
    if not parts or "".join(m.group() for m in parts) != text.strip().lower():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 10m, 1h30m)")
    seconds = sum(float(m.group(1)) * _UNITS[m.group(2)] for m in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a duration must be more than 0")
    return seconds


def add_parser(sub: Any) -> None:
    """`poolswitch keys` on the command's subparsers."""
    keys = sub.add_parser("keys", help="list, enable, disable, reset, test or drain keys")
    keys.add_argument("action", choices=("list", *ACTIONS))
    keys.add_argument("key_id", nargs="?", help="the key's id (every action but list)")
    keys.add_argument("--pool", help="the pool the key is in (needed when several have its id)")
    keys.add_argument(
        "--for", dest="seconds", type=duration, help="disable: only for this long (10m, 1h)"
    )
    keys.add_argument("--counters", action="store_true", help="reset: the counters too")
    keys.add_argument("--apply", action="store_true", help="test: let the result count")
    keys.add_argument("--path", help="test: GET this path (default: the pool's verify_path)")
    keys.add_argument("--json", action="store_true", help="print the API's JSON answer")
    where = keys.add_mutually_exclusive_group()
    where.add_argument("--url", help=URL_HELP)
    where.add_argument("--config", help="find the proxy (and admin_token) from this file")
    keys.add_argument("--token", help="the admin token (default: $POOLSWITCH_ADMIN_TOKEN)")
    keys.set_defaults(run=cmd_keys)


_ONLY = {"seconds": ("disable", "--for"), "counters": ("reset", "--counters")}
_ONLY_TEST = (("apply", "--apply"), ("path", "--path"))


def _usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, or None."""
    if args.action != "list" and not args.key_id:
        return f"poolswitch keys {args.action} needs a key id"
    if args.action == "list" and args.key_id:
        return "poolswitch keys list takes no key id"
    for name, (action, flag) in _ONLY.items():
        if getattr(args, name) not in (None, False) and args.action != action:
            return f"{flag} is for poolswitch keys {action}"
    for name, flag in _ONLY_TEST:
        if getattr(args, name) not in (None, False) and args.action != "test":
            return f"{flag} is for poolswitch keys test"
    return None


def cmd_keys(args: argparse.Namespace) -> int:
    from poolswitch import cli  # the command's shared helpers (cli imports this module)

    problem = _usage(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    target = admin_target(args)
    if target is None:
        return 2
    base, token = target
    if args.action == "list":
        doc = _call(base + ADMIN_PREFIX + "/keys", "GET", token, None)
        if doc is None:
            return 1
        print(json.dumps(doc, indent=2) if args.json else cli.format_status(doc, time.time()))
        return 0
    where = f"/pools/{args.pool}/keys" if args.pool else "/keys"
    body = {
        name: value
        for name, value in (
            ("seconds", args.seconds),
            ("counters", args.counters or None),
            ("apply", args.apply or None),
            ("path", args.path),
        )
        if value is not None
    }
    url = f"{base}{ADMIN_PREFIX}{where}/{args.key_id}/{args.action}"
    doc = _call(url, "POST", token, body)
    if doc is None:
        return 1
    print(json.dumps(doc, indent=2) if args.json else describe(doc, time.time()))
    return 0


def describe(key: dict[str, Any], now: float) -> str:
    """One line for an action's answer: `a: cooling_down (returns in 600s: …)`."""
    line = f"{key['id']}: {key['state']}"
    until = key.get("cooldown_until")
    if until is not None:
        line += f" (returns in {max(until - now, 0):.0f}s: {key.get('reason') or '-'})"
    elif key.get("reason") and key["state"] == "disabled":
        line += f" ({key['reason']})"
    test = key.get("test")
    if test is not None:
        status = "-" if test["status"] is None else test["status"]
        line = (
            f"{key['id']}: {test['key']} — {status} {test['outcome']} in "
            f"{test['latency_ms']:.0f}ms ({test['detail']}); now {key['state']}"
        )
    return line


def _call(url: str, method: str, token: str, body: dict[str, Any] | None) -> Any:
    """The admin API's JSON answer, or None after a message on stderr."""
    data = fetch(url, method, token, body, timeout=30)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        print(f"error: the proxy at {url} answered something that is not JSON", file=sys.stderr)
        return None
