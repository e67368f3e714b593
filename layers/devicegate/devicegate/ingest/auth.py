"""Ingest tokens: a path segment or a configured header, checked in constant time.

The secret holds {"current": "...", "previous": "..."}; both are accepted, so a token can be
rotated without dropping a push (README "Token rotation"). It is re-read every few minutes.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable

from devicegate.core.envelope import RawPush
from devicegate.core.errors import StorageUnavailable
from devicegate.infra.observability import logger

CACHE_SECONDS = 300


class TokenVerifier:
    def __init__(self, fetch: Callable[[], str], header_name: str = "", clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._header = header_name.strip().lower()
        self._clock = clock
        self._tokens: tuple[bytes, ...] = ()
        self._loaded_at = float("-inf")

    def _valid_tokens(self) -> tuple[bytes, ...]:
        if self._clock() - self._loaded_at > CACHE_SECONDS:
            try:
                secret = json.loads(self._fetch())
            except StorageUnavailable:
                if self._tokens:
                    # Refreshing failed, but the tokens read minutes ago are known: keep answering
                    # with them (and try again on the next push) rather than refuse every push
                    # while Secrets Manager is down. A cold cache has nothing to go on: 503.
                    logger.warning("token secret unreadable, using the tokens read before")
                    return self._tokens
                raise
            except (ValueError, TypeError):
                raise StorageUnavailable("token secret is not JSON") from None
            values = [secret.get(k) for k in ("current", "previous")] if isinstance(secret, dict) else []
            self._tokens = tuple(v.encode() for v in values if isinstance(v, str) and len(v) >= 8)
            self._loaded_at = self._clock()
        return self._tokens

    def verify(self, push: RawPush) -> bool:
        candidates = [push.token or ""]
        if self._header:
            candidates.append(push.headers.get(self._header, ""))
        valid = self._valid_tokens()
        ok = False
        for candidate in candidates:
            given = candidate.encode()
            for token in valid:
                # Every comparison runs, hit or miss, so timing says nothing about the tokens.
                ok |= hmac.compare_digest(given, token)
        return ok


def secrets_manager_fetcher(secret_id: str, deadline_s: float | None = None) -> Callable[[], str]:
    def fetch() -> str:
        from devicegate.infra.aws import client, failures, unavailable

        if not secret_id:
            raise StorageUnavailable("token secret is not configured")
        try:
            answer = client("secretsmanager", deadline_s).get_secret_value(SecretId=secret_id)
        except failures() as exc:
            raise unavailable("token secret read", exc) from None
        # A binary secret has no SecretString: refused below as "not JSON", like any bad secret.
        return answer.get("SecretString") or ""

    return fetch
