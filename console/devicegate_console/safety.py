"""What keeps the console to the person who started it (docs/console.md, "Safety").

- Every request needs the access token: the link the command prints carries it once (`?token=`),
  the answer swaps it for a cookie (HttpOnly, SameSite=Strict) and redirects to the same page
  without it, so it does not stay in the address bar or the history. No token, no fleet data: a
  403 page that says where the link is. Compared in constant time.
- The Host header must name the loopback address: a web page that rebinds its own DNS name to
  127.0.0.1 reaches the port, but not with a Host the console accepts.
- A request that could change something (any method but GET and HEAD) must come from the
  console's own origin (its Origin header), on top of the SameSite cookie.
- Answers forbid framing, send a Referer to the console alone (the tile server never sees a
  console URL) and allow scripts and styles from the console itself only (a Content Security Policy);
  images from the console, the tile server and the one S3 origin of the pictures' presigned URLs.
- A form that changes something (edit and replay; send or cancel a command) carries a token
  derived from the access token (app.Settings.csrf), which the request must bring back.
- The log line of a request is its method, its path without the query, its status and duration.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

log = logging.getLogger("devicegate_console")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD"})

REFUSED = ("This is the devicegate console of whoever started it on this machine. Open the link "
           "`devicegate console` printed when it started (it carries the access token).\n")


def cookie_name(port: int) -> str:
    # Cookies ignore ports: two consoles on one machine keep a cookie each.
    return f"devicegate_console_{port}"


def content_policy(tiles: str | None, photos: str | None = None) -> str:
    images = "'self' data:"
    if tiles:
        # The tile server's origin only; a {s} subdomain template is any subdomain of its host.
        parts = urlsplit(tiles)
        images += f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"
    if photos:
        # The one origin the pictures' presigned URLs point at (reads.Reads.photo_origin).
        images += f" {photos}"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            f"img-src {images}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class Guard:
    """The middleware: the token, the host, the origin of unsafe requests, the headers, the log."""

    def __init__(self, token: str, port: int, tiles: str | None, photos: str | None = None):
        self.token = token.encode()
        self.port = port
        self.cookie = cookie_name(port)
        self.policy = content_policy(tiles, photos)

    def _matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.token)

    def _host_ok(self, request: Request) -> bool:
        host = (request.headers.get("host") or "").rpartition(":")
        name = host[0] if host[1] else host[2]
        return name in LOOPBACK_HOSTS

    def _origin_ok(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return False
        parts = urlsplit(origin)
        return parts.hostname in LOOPBACK_HOSTS and parts.port == self.port

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.monotonic()
        response = await self._answer(request, call_next)
        response.headers["content-security-policy"] = self.policy
        response.headers["x-frame-options"] = "DENY"
        response.headers["x-content-type-options"] = "nosniff"
        # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on the
        # console's own form posts, which the origin check must then refuse.
        response.headers["referrer-policy"] = "same-origin"
        response.headers.setdefault("cache-control", "no-store")
        log.info("console request method=%s path=%s status=%d ms=%d", request.method, request.url.path,
                 response.status_code, (time.monotonic() - started) * 1000)
        return response

    async def _answer(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not self._host_ok(request):
            return PlainTextResponse("the console answers on 127.0.0.1 only\n", status_code=421)
        if request.method not in SAFE_METHODS and not self._origin_ok(request):
            return PlainTextResponse("refused: a change must come from the console's own pages\n", status_code=403)
        offered = request.query_params.get("token")
        if offered is not None:
            if not self._matches(offered):
                return PlainTextResponse(REFUSED, status_code=403)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            answer = RedirectResponse(target, status_code=303)
            answer.set_cookie(self.cookie, self.token.decode(), httponly=True, samesite="strict", path="/")
            return answer
        if not self._matches(request.cookies.get(self.cookie)):
            return PlainTextResponse(REFUSED, status_code=403)
        return await call_next(request)
