"""What keeps the web UI a local tool: the Host check, the access token, and the guard on every write.

- Host: bound to localhost, a request must name a local host (``127.0.0.1``, ``localhost``, ``::1``):
  a page elsewhere cannot reach the UI through a DNS name that resolves to 127.0.0.1 (rebinding).
- Token: bound to anything else, every request carries the token (``Authorization: Bearer``, or once
  as ``?token=``, which sets an HttpOnly, SameSite=Strict cookie and redirects to the bare address).
- Writes (POST only): the form's ``csrf`` field must be the server's HMAC of the ``bmem_csrf`` cookie
  (SameSite=Strict, set on the first page), so a cookie planted by a page on another local port is
  worth nothing; and a browser's ``Origin`` and ``Sec-Fetch-Site`` must name this very origin.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import RedirectResponse, Response

if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request

__all__ = ["CSRF_COOKIE", "LOCAL_HOSTS", "TOKEN_COOKIE", "Guardrails", "GuardrailsMiddleware", "checked_form"]

CSRF_COOKIE = "bmem_csrf"
TOKEN_COOKIE = "bmem_ui_token"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_local(host: str) -> bool:
    """Whether binding to ``host`` keeps the UI on this machine."""
    return host.strip("[]") in LOCAL_HOSTS


@dataclass(frozen=True)
class Guardrails:
    """The UI's safety settings: the access token (None: none asked) and whether Host must be local."""

    token: str | None = None
    local_only: bool = True
    secure_cookies: bool = False
    extra_hosts: frozenset[str] = field(default_factory=frozenset)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)  # signs the CSRF tokens

    def csrf_for(self, cookie: str) -> str:
        """The form token that goes with this CSRF cookie."""
        return hmac.new(self.secret, cookie.encode(), "sha256").hexdigest()


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8765
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class GuardrailsMiddleware(BaseHTTPMiddleware):
    """Checks Host and the token before any route runs, and hands every visitor a CSRF cookie."""

    def __init__(self, app: object, guardrails: Guardrails) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.g = guardrails

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        g = self.g
        if g.local_only:
            name = _host_name(request.headers.get("host", ""))
            if name not in LOCAL_HOSTS and name not in g.extra_hosts:
                return Response("this UI answers only to a local host name (127.0.0.1 or localhost)\n", 400)
        if g.token is not None:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), g.token.encode()):
                rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                target = request.url.path + (f"?{rest}" if rest else "")
                redirect = RedirectResponse(target, status_code=303)
                redirect.set_cookie(TOKEN_COOKIE, g.token, httponly=True, samesite="strict", secure=g.secure_cookies)
                return redirect
            auth = request.headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else ""
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            if not any(hmac.compare_digest(c.encode(), g.token.encode()) for c in (bearer, cookie) if c):
                return Response("this UI needs its access token: open the address `bmem ui` printed\n", 401)
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        fresh = len(cookie) < 32
        if fresh:
            cookie = secrets.token_urlsafe(32)
        request.state.csrf = g.csrf_for(cookie)
        request.state.guardrails = g
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        if fresh:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", secure=g.secure_cookies)
        return response


async def checked_form(request: Request) -> FormData:
    """The form of a write request, once its origin and its CSRF token are checked (else 403)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(403, f"refused: a cross-site request ({site}) may not change the handbook")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
        raise HTTPException(403, "refused: the request comes from another origin")
    form = await request.form()
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get("csrf")
    g: Guardrails = request.state.guardrails
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), g.csrf_for(cookie).encode()):
        raise HTTPException(403, "refused: the form's CSRF token is missing or stale (reload the page and try again)")
    return form
