"""The TLS context of the upstream connections: the system's trusted CAs, plus those of an
`upstream_ca_file` (a PEM bundle: a private CA, a TLS-inspecting egress proxy) when one is set.

The file is read once, when a pool's upstream client opens (forwarder.py); a config names a
file that does not load only as a config problem (fieldtypes.CaFile), never at the first
request. The fingerprint `read_bundle` returns says whether a reload must open a new client
(the file's content changed under the same path).
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

__all__ = ["ca_problem", "client_context", "read_bundle"]


def read_bundle(path: str) -> tuple[str, str]:
    """(the PEM text, its fingerprint); OSError or ValueError when it is not a CA bundle."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("not a PEM file (binary content)") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("not a PEM file of CA certificates (no BEGIN CERTIFICATE block)")
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError:
        raise ValueError(
            "not a PEM file of CA certificates (a certificate does not parse)"
        ) from None
    return text, hashlib.sha256(data).hexdigest()


def ca_problem(path: str) -> str | None:
    """What is wrong with a CA file, in words that never repeat the path; None when it loads."""
    try:
        read_bundle(path)
    except OSError as exc:
        return f"cannot read ({exc.strerror or type(exc).__name__})"
    except ValueError as exc:
        return str(exc)
    return None


def client_context(ca_text: str) -> ssl.SSLContext:
    """Certificates verified against the system store and the bundle; host names checked."""
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=ca_text)
    return context
