"""HTTP on $HOST:$PORT: /health for the platform, /stats for people who read JSON, /metrics for
Prometheus, and the status page at / for everyone else.

Every answer is built from the watchdog's cached state: no request touches the database.
What each may show anonymously: /health no URL or path ever, and no row count once STATS_TOKEN
is set (``exposure``); /stats everything, behind the token; /metrics everything but the rows per
table, which need the token once it is set; / what /health shows, laid out, behind the token
once it is set (a browser's login prompt: any user name, the token as the password).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import platform
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from conf.logging import redact
from conf.units import MIB
from watchdog.runtime.pauses import LoopLag
from watchdog.version import app_version
from watchdog.web.auth import authorised, authorised_person, sends_credentials
from watchdog.web.exposure import public_health, scrub_text
from watchdog.web.metrics import Exposition, build_registry
from watchdog.web.status_page import CONTENT_SECURITY_POLICY, ChartCache, StatusView, render
from watchdog.web.webhook_proxy import add_webhook_proxy

if TYPE_CHECKING:
    from watchdog.web.protocols import Observable

log = logging.getLogger(__name__)
SERVICE_KEY = web.AppKey("service", object)


def _service(request: web.Request) -> Observable:
    return request.app[SERVICE_KEY]  # type: ignore[return-value]


def json_response(
    body: dict[str, Any], status: int = 200, secrets: list[str] | None = None
) -> web.Response:
    """JSON with every secret in force replaced, whatever an error message may have carried."""
    return web.Response(
        text=redact(json.dumps(body, indent=2, sort_keys=False), secrets or []) + "\n",
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _json(request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
    return json_response(body, status, _service(request).settings.secrets())


def known_paths(service: Observable) -> list[str]:
    """Where this watchdog keeps things, as configured and as measured: never shown anonymously."""
    settings, state = service.settings, service.state
    found = [str(settings.data_dir), state.database.path, state.storage.path]
    found.append(state.storage.mount_point)
    if settings.database_path is not None:
        found.append(str(settings.database_path))
    return [path for path in found if path]


def known_addresses(service: Observable) -> list[str]:
    """The offsite repository's URL and its parts (host, path) as git may quote them."""
    url = service.settings.backup_git_url
    if not url:
        return []
    parts = urlsplit(url)
    if parts.scheme and parts.hostname:
        return [url, url.removesuffix(".git"), parts.hostname, parts.path.strip("/")]
    host, _, path = url.rpartition(":")  # scp-like host:path (user@ included)
    return [url, host, host.rpartition("@")[2], path.strip("/")]


def health_document(service: Observable) -> tuple[dict[str, Any], int]:
    """The /health document as anyone may see it, and its HTTP status."""
    report = service.health()
    hide_counts = bool(_stats_token(service))
    public = public_health(
        report.document, known_paths(service), hide_counts, known_addresses(service)
    )
    return public, report.http_status


async def health(request: web.Request) -> web.Response:
    document, status = health_document(_service(request))
    return _json(request, document, status)


def _stats_token(service: Observable) -> str | None:
    token = service.settings.stats_token
    return (token.get_secret_value() or None) if token is not None else None


UNAUTHORISED = {"error": "unauthorised: send Authorization: Bearer <STATS_TOKEN>"}


async def stats(request: web.Request) -> web.Response:
    service = _service(request)
    token = _stats_token(service)
    if token and not authorised(request, token):
        return _json(request, UNAUTHORISED, 401)
    return _json(request, stats_document(service))


def stats_document(service: Observable) -> dict[str, Any]:
    """The detailed picture: health plus history, tables, versions and the watchdog's own use."""
    report = service.health()
    state, settings = service.state, service.settings
    me = psutil.Process(os.getpid())
    document: dict[str, Any] = dict(report.document)
    document["database"] = {
        **document["database"],
        "path": state.database.path,
        "tables": dict(state.database.tables),
        "check_seconds": state.database.check_seconds,
        "detail": state.database.detail,
        "sqlite_version": state.database.sqlite_version,
    }
    document["storage"] = {
        **document["storage"],
        "data_dir": state.storage.path,
        "mount_point": state.storage.mount_point,
        "total_mb": round(state.storage.total_bytes / MIB, 1),
    }
    document["bot"] = {
        **document["bot"],
        "launches": state.bot.launches,
        "last_exit_reason": state.bot.last_exit_reason,
        "message": state.bot.message,
    }
    document["watchdog"] = {
        "pid": me.pid,
        "rss_mb": round(me.memory_info().rss / MIB, 1),
        "app_version": app_version(),
        "python": platform.python_version(),
        "sqlite_version": state.database.sqlite_version,
    }
    document["settings"] = {
        "integrity_check_every_s": settings.integrity_check_every,
        "bot_heartbeat_timeout_s": settings.bot_heartbeat_timeout,
        "disk_warn_percent": settings.disk_warn_percent,
        "disk_critical_percent": settings.disk_critical_percent,
        "admin_count": len(settings.admin_ids),
        "stats_protected": settings.stats_token is not None,
    }
    document["events"] = [
        {"at": event.at, "kind": event.kind, "message": event.message} for event in state.events
    ]
    return document


async def metrics(request: web.Request) -> web.Response:
    """Every series for a caller with the token (or when there is none); without credentials,
    every series but the rows per table; with wrong credentials, 401 (a scraper misconfigured
    is told so, rather than silently losing series)."""
    token = _stats_token(_service(request))
    registry = request.app[REGISTRY_KEY]
    if token and not authorised(request, token):
        if sends_credentials(request):
            return _json(request, UNAUTHORISED, 401)
        registry = request.app[PUBLIC_REGISTRY_KEY]
    return web.Response(body=registry.latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def status_view(service: Observable) -> StatusView:
    """What the status page shows: nothing /health would not show anonymously."""
    state = service.state
    document, _ = health_document(service)
    paths, addresses = known_paths(service), known_addresses(service)
    secrets = service.settings.secrets()
    events = [
        (event.at, event.kind, redact(scrub_text(event.message, paths, addresses), secrets))
        for event in state.events
    ]
    return StatusView(
        document=document,
        history=state.history,
        intervals=dict(state.backups.intervals),
        durations={
            tier: summary.duration_s
            for tier, summary in state.backups.newest.items()
            if summary is not None and summary.duration_s > 0
        },
        events=events,
        now=service.clock.time(),
        version=app_version(),
    )


_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def status_page(request: web.Request) -> web.Response:
    service = _service(request)
    token = _stats_token(service)
    if token and not authorised_person(request, token):
        return web.Response(
            text="<!doctype html><title>ErixCast</title><p>This status page needs STATS_TOKEN: "
            "sign in with any user name and the token as the password.</p>\n",
            status=401,
            content_type="text/html",
            headers={
                **_PAGE_HEADERS,
                "WWW-Authenticate": 'Basic realm="ErixCast", charset="UTF-8"',
            },
        )
    page = redact(render(status_view(service), request.app[CHARTS_KEY]), service.settings.secrets())
    return web.Response(text=page, content_type="text/html", headers=_PAGE_HEADERS)


REGISTRY_KEY = web.AppKey("registry", Exposition)
PUBLIC_REGISTRY_KEY = web.AppKey("public_registry", Exposition)
CHARTS_KEY = web.AppKey("charts", ChartCache)


def build_app(service: Observable) -> web.Application:
    app = web.Application()
    lag = LoopLag()
    app[SERVICE_KEY] = service
    app[REGISTRY_KEY] = Exposition(build_registry(service, lag=lag))
    app[PUBLIC_REGISTRY_KEY] = Exposition(build_registry(service, table_rows=False, lag=lag))
    app[CHARTS_KEY] = ChartCache()
    app.cleanup_ctx.append(functools.partial(_measure_the_loop, lag))
    app.router.add_get("/", status_page)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    add_webhook_proxy(app, service.settings)
    return app


async def _measure_the_loop(lag: LoopLag, app: web.Application) -> AsyncIterator[None]:
    """The loop-lag probe, for as long as the app is served."""
    probe = asyncio.get_running_loop().create_task(lag.run())
    yield
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe


class CannotServe(Exception):
    """HOST:PORT cannot be listened on (taken, not an address of this machine)."""


async def start_http(service: Observable, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise CannotServe(f"cannot serve HTTP on {host}:{port} (HOST/PORT): {error}") from None
    log.info("serving /, /health, /stats and /metrics on http://%s:%s", host, port)
    return runner
