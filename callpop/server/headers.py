"""Security headers on every response: pages, API, static files, errors, the socket upgrade.

The pages load scripts and styles only from ``/static`` and pass their data in a JSON
``<script type="application/json">`` that is never executed, so the policy needs no
``'unsafe-inline'``: an injected ``<script>`` or ``onerror=`` does not run even if escaping
ever failed. ``frame-ancestors 'none'`` (and ``X-Frame-Options`` for old browsers) stops a
page on another site, or a same-site one, from framing a logged-in desk and clicking on it.
"""

from __future__ import annotations

from aiohttp import web

from callpop.server.keys import SETTINGS

__all__ = ["CONTENT_SECURITY_POLICY", "add_security_headers", "content_security_policy", "setup_security_headers"]

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",      # the empty favicon is a data: URL
    "connect-src 'self'",        # fetch to /api and the /ws socket of this host
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every response, including raised HTTP errors."""
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    policy = request.app.get(_POLICY)
    if policy is not None:
        response.headers["Content-Security-Policy"] = policy
    if request.app[SETTINGS].web.cookie_secure:  # served over HTTPS: browsers keep to it
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def content_security_policy(instance_urls: tuple[str, ...]) -> str:
    """The policy, with the other instances in ``connect-src`` when the page may move to
    them (``[push] instance_urls``): their sockets, and their ``/health``, which a page
    whose own instance stopped answering asks (without cookies) before it moves there."""
    if not instance_urls:
        return CONTENT_SECURITY_POLICY
    hosts = [url.split("://", 1)[1].rstrip("/") for url in instance_urls]
    sockets = [("wss://" if url.startswith("https:") else "ws://") + host
               for url, host in zip(instance_urls, hosts, strict=True)]
    pages = [url.split("://", 1)[0] + "://" + host for url, host in zip(instance_urls, hosts, strict=True)]
    sources = " ".join(dict.fromkeys(sockets + pages))
    return CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {sources}")


_POLICY: web.AppKey[str] = web.AppKey("content_security_policy", str)


def setup_security_headers(app: web.Application) -> None:
    urls = app[SETTINGS].push.instance_urls
    if urls:
        app[_POLICY] = content_security_policy(urls)
    app.on_response_prepare.append(add_security_headers)
