"""Who may call the API: keys with scopes (the Meilisearch model, in Django).

A key reads `qrn_<prefix>_<secret>`; only the SHA-256 of the whole key is stored, and the prefix
finds its row. A random 256-bit secret needs no slow hash: nothing can be guessed from its
digest. With QUERN_REQUIRE_KEYS on (the default with DEBUG off) every API call but the
documentation needs a key whose scopes allow it: 401 when it is missing, wrong or expired,
403 when its scopes do not allow the call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from indexing.errors import QuernError
from indexing.models import ApiKey, Scope

PREFIX = "qrn_"
# last_used_at is written at most this often per key: a busy key must not write on every call.
TOUCH_EVERY = timedelta(minutes=1)


def required() -> bool:
    return settings.QUERN_REQUIRE_KEYS


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name: str, scopes: Iterable[str], expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key: its row, and the key itself, which is shown this once and never stored."""
    scopes = sorted(set(scopes))
    unknown = set(scopes) - set(Scope.values)
    if not scopes or unknown:
        raise QuernError(
            "bad_parameter",
            f"Scopes must be some of {', '.join(Scope.values)}"
            + (f"; {', '.join(sorted(unknown))} is not one." if unknown else "."),
        )
    row = ApiKey(name=name, scopes=scopes, expires_at=expires_at)
    key = give_secret(row)
    row.save()
    return row, key


def give_secret(row: ApiKey) -> str:
    """Give an unsaved key row its prefix and digest; the key itself, to show once."""
    row.prefix = secrets.token_hex(4)
    key = f"{PREFIX}{row.prefix}_{secrets.token_urlsafe(32)}"
    row.digest = _digest(key)
    return key


def _unauthorized(message: str) -> QuernError:
    return QuernError("unauthorized", message, status=401)


def authenticate(authorization: str, allowed: Iterable[str]) -> ApiKey:
    """The key an `Authorization` header carries, if it may make a call needing one of `allowed`."""
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if not authorization.strip():
        raise _unauthorized(
            "This call needs an API key: send 'Authorization: Bearer <key>' "
            "(an admin makes one with manage.py createkey, or in Django admin)."
        )
    if scheme.lower() != "bearer" or not key:
        raise _unauthorized("Send the API key as 'Authorization: Bearer <key>'.")
    prefix = key[len(PREFIX) :].split("_", 1)[0] if key.startswith(PREFIX) else ""
    row = ApiKey.objects.filter(prefix=prefix).first() if prefix else None
    if row is None or not hmac.compare_digest(row.digest, _digest(key)):
        raise _unauthorized("This API key is not valid.")
    now = timezone.now()
    if row.revoked:
        raise _unauthorized(f"API key {row.prefix}… was revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise _unauthorized(f"API key {row.prefix}… expired at {row.expires_at:%Y-%m-%d %H:%M} UTC.")
    allowed = set(allowed)
    if Scope.ADMIN not in row.scopes and not allowed & set(row.scopes):
        needed = " or ".join(sorted(allowed))
        raise QuernError(
            "forbidden",
            f"API key {row.prefix}… may {', '.join(row.scopes)}; this call needs the scope {needed}.",
            status=403,
        )
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
    return row


def client_address(request) -> str:
    """The caller's address: REMOTE_ADDR, or the one QUERN_TRUSTED_PROXIES proxies put in X-Forwarded-For."""
    proxies = settings.QUERN_TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR") or "unknown"
