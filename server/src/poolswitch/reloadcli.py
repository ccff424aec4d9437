"""`poolswitch reload` and the reload side of `poolswitch start`.

    poolswitch reload [--url URL | --config FILE] [--token T]

asks a running proxy to re-read its config file (`POST /poolswitch/admin/reload`, with the
admin token: --token, else $POOLSWITCH_ADMIN_TOKEN, else `admin_token` from --config). Exit 0
with the new config version; 1 when the proxy refused it (each problem on stderr) or cannot be
reached; 2 without an admin token. `kill -HUP <pid>` does the same without the admin API.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from poolswitch.admin import ADMIN_RELOAD
from poolswitch.app import PoolSwitchApp
from poolswitch.logmask import LogMask, for_config, install
from poolswitch.proxyclient import URL_HELP, admin_target, fetch


def add_command(sub: Any) -> None:
    """The `reload` subcommand, on cli.parser()'s subparsers."""
    cmd = sub.add_parser("reload", help="make a running proxy re-read its config file")
    where = cmd.add_mutually_exclusive_group()
    where.add_argument("--url", help=URL_HELP)
    where.add_argument("--config", help="find the proxy (and admin_token) from this file")
    cmd.add_argument("--token", help="the admin token (default: $POOLSWITCH_ADMIN_TOKEN)")
    cmd.set_defaults(run=cmd_reload)


def cmd_reload(args: argparse.Namespace) -> int:
    target = admin_target(args)
    if target is None:
        return 2
    base, token = target
    data = fetch(base + ADMIN_RELOAD, "POST", token, timeout=30)
    if data is None:
        return 1
    print(f"ok: config version {json.loads(data)['config_version']}")
    return 0


def serve_reloads(app: PoolSwitchApp) -> None:
    """For `poolswitch start`: mask log records for the app's config (logmask.py), reload on
    SIGHUP, and mask for the new config (its keys, auth headers) after each reload."""
    masks: list[LogMask] = [for_config(app.config, app.redactor)]
    install(masks[0])

    def remask(reloaded: PoolSwitchApp) -> None:
        mask = for_config(reloaded.config, reloaded.redactor)
        install(mask)  # both a moment: no record passes unmasked
        for handler in logging.getLogger().handlers:
            handler.removeFilter(masks[0])
        masks[0] = mask

    app.reload_on_sighup = True
    app.on_reload.append(remask)
