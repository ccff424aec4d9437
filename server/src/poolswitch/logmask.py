"""Log records, masked: no credential header value, auth query parameter or key value reaches a
log line, whichever logger wrote it (ours, uvicorn's, the websockets library's, aiohttp's).

At `--log-level debug` the websockets library (through uvicorn) logs every header of an upgrade
request, `authorization` and `x-api-key` included, and uvicorn logs a refused upgrade's target
with its query string (`?key=...`) at info. `LogMask` is a `logging.Filter` installed on the
handlers by `cli.setup_logging`, so it sees every record once, when it is emitted: the rendered
message (and a traceback's text) has the values of credential headers (`name: value`,
`name=value`, `('name', 'value')`) and credential query parameters replaced by `***`, and any
key value by its key id. A formatter that masks for itself (`MaskingFormatter`: the JSON
format, logjson.py, which needs a record's arguments as they were) gets the mask instead of the
filter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from poolswitch.config import Config
from poolswitch.redact import Redactor

CREDENTIAL_HEADERS = (
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-poolswitch-token",
    "cookie",
    "set-cookie",
)
CREDENTIAL_PARAMS = ("key", "api_key", "apikey", "api-key", "access_token", "token")
MASK = "***"

_TRACEBACKS = logging.Formatter()


class LogMask(logging.Filter):
    """Masks credentials in every record it sees (see the module docstring)."""

    def __init__(
        self,
        headers: Iterable[str] = (),
        params: Iterable[str] = (),
        redactor: Redactor | None = None,
    ) -> None:
        super().__init__()
        names = sorted({h.lower() for h in (*CREDENTIAL_HEADERS, *headers)}, key=len, reverse=True)
        keys = sorted({p for p in (*CREDENTIAL_PARAMS, *params)}, key=len, reverse=True)
        header = "|".join(map(re.escape, names))
        param = "|".join(map(re.escape, keys))
        self._pattern = re.compile(
            # a header: name, then `: ` / `=` / `', b'` (a repr), then the value to the line's
            # or the quote's end
            rf"(?i)(?P<h>(?<![\w-])(?:{header})['\"]?\s*[:=,]\s*(?:b?['\"])?)[^'\"\r\n]+"
            # a query parameter: ?name=value or &name=value
            rf"|(?P<q>[?&;](?:{param})=)[^&\s'\"#]*"
        )
        # A quick first look (substring tests are much cheaper than the pattern): a header's
        # name, or a query string, anywhere in the text?
        anchors = ["authoriz", "api-key", "token", "cookie"]
        anchors += [name for name in names if not any(a in name for a in anchors)]
        self._anchors = tuple(anchors)
        self._redactor = redactor

    def mask(self, text: str) -> str:
        """`text` with credentials masked (the same object when there were none)."""
        if self._suspect(text):
            text = self._pattern.sub(_masked, text)
        return self._redactor.redact_text(text) if self._redactor is not None else text

    def _suspect(self, text: str) -> bool:
        if "?" in text or "&" in text or ";" in text:
            return True
        low = text.lower()
        return any(anchor in low for anchor in self._anchors)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        # Keep the rendered message, so that the handler's formatter does not render it again.
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


class MaskingFormatter(logging.Formatter):
    """A formatter that applies the mask itself (`install` hands it over)."""

    mask: LogMask | None = None


def _masked(match: re.Match[str]) -> str:
    return (match.group("h") or match.group("q")) + MASK


def for_config(config: Config, redactor: Redactor | None) -> LogMask:
    """The mask for a proxy: the usual credential names plus every pool's auth header and
    auth query parameter, and every pool's key values."""
    headers = sorted({p.auth_header_name for p in config.pools} | {config.auth_header_name})
    params = sorted({p.auth_query_param for p in config.pools if p.auth_query_param})
    if config.auth_query_param and config.auth_query_param not in params:
        params.append(config.auth_query_param)
    return LogMask(headers, params, redactor)


def install(mask: LogMask, logger: logging.Logger | None = None) -> None:
    """Put `mask` on every handler of `logger` (the root logger by default): as a filter, or
    in the handler's formatter if that masks for itself."""
    for handler in (logger or logging.getLogger()).handlers:
        if isinstance(handler.formatter, MaskingFormatter):
            handler.formatter.mask = mask
        else:
            handler.addFilter(mask)
