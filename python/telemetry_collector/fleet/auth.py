"""Who may read the vendor side: loopback by default, a shared secret otherwise.

The secret (at least MIN_TOKEN_CHARS characters) comes from a file or an
environment variable, never from the command line (where `ps` shows it).  A
client presents it as `Authorization: Bearer <token>` (scripts, exports) or as
the password of HTTP Basic authentication with any user name (a browser asks
for it once).  Comparison is of SHA-256 digests with hmac.compare_digest: its
time depends neither on where the strings differ nor on the token's length.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
from pathlib import Path

from aiohttp import BasicAuth

TOKEN_ENV = "TELEMETRY_VENDOR_TOKEN"
MIN_TOKEN_CHARS = 16
REALM = "telemetry fleet"


class AuthConfigError(ValueError):
    pass


def load_token(token_file: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The configured secret: the file's first line, else $TELEMETRY_VENDOR_TOKEN, else None."""
    env = os.environ if environ is None else environ
    if token_file:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthConfigError(f"cannot read the token file: {exc.strerror}") from None
        token = text.splitlines()[0].strip() if text.strip() else ""
        source = token_file
    else:
        token = env.get(TOKEN_ENV, "").strip()
        source = f"${TOKEN_ENV}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS:
        raise AuthConfigError(f"the token in {source} must be at least {MIN_TOKEN_CHARS} characters")
    return token


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


class TokenCheck:
    """Checks an Authorization header against the configured secret."""

    def __init__(self, token: str) -> None:
        self._digest = _digest(token)

    def allows(self, authorization: str | None) -> bool:
        presented = _presented_secret(authorization or "")
        # Always one comparison, also when nothing usable was presented.
        return hmac.compare_digest(self._digest, _digest(presented if presented is not None else "\x00"))


def _presented_secret(header: str) -> str | None:
    """The secret in `Bearer <token>` or as the password of `Basic <base64 of user:password>`
    (UTF-8; any number of spaces after the scheme); None for anything else."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    try:
        return str(BasicAuth.decode(f"{scheme} {value}", encoding="utf-8").password)
    except ValueError:  # another scheme, not base64, not UTF-8, no colon
        return None
