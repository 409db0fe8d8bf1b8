"""Who is signed in at the desk: a signed session cookie (itsdangerous), and a CSRF token per session.

The cookie names the token's digest (what the token file keeps, never the token itself), the agent's time
zone and the CSRF token; it is signed, so it cannot be forged, and it expires after a shift. Every request
checks the digest against the API's token file again: a token taken out of the file ends its sessions at
the next restart of the API. Every form carries the CSRF token, checked in constant time; the cookie is
HttpOnly and SameSite=Lax.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from starter.desk.secrets import derived

COOKIE = "incidents_desk"
SHIFT_SECONDS = 12 * 3600


@dataclass
class Session:
    digest: str | None = None  # the sha256 of the agent's token: who is signed in (None: nobody)
    tz: str = "UTC"
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    fresh: bool = True  # not read from a cookie: the response must set one

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf, str(presented))


class SessionCookies:
    def __init__(self, secret: bytes, secure: bool = False) -> None:
        self._serializer = URLSafeTimedSerializer(derived(secret, "session"), salt="desk-session")
        self.secure = secure

    def read(self, cookie: str | None) -> Session:
        if not cookie:
            return Session()
        try:
            data: dict[str, Any] = self._serializer.loads(cookie, max_age=SHIFT_SECONDS)
        except BadSignature:
            return Session()
        return Session(
            digest=data.get("d"), tz=str(data.get("tz") or "UTC"), csrf=str(data.get("c") or ""), fresh=False
        )

    def write(self, session: Session) -> str:
        return self._serializer.dumps({"d": session.digest, "tz": session.tz, "c": session.csrf})

    def cookie_options(self) -> dict[str, Any]:
        return {
            "key": COOKIE,
            "max_age": SHIFT_SECONDS,
            "httponly": True,
            "samesite": "lax",
            "secure": self.secure,
            "path": "/desk",
        }
