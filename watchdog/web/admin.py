"""The loopback admin API: how the bot (admin commands) and the local commands (``backup``,
``verify``, ``drill``, ``restore``, ``list``, ``status``: ``watchdog.web.admin_jobs``) ask the
running watchdog to act. It listens on 127.0.0.1 only, on a port of its own (never the public
$PORT), and every request must carry ``Authorization: Bearer <secret>``: a per-run secret handed
to the bot in its environment and written for local commands to ``DATA_DIR/run/admin.json``
(mode 0600, removed at exit)."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from watchdog.web.admin_endpoint import AdminEndpoint
from watchdog.web.admin_jobs import add_job_routes
from watchdog.web.auth import authorised
from watchdog.web.public import json_response

if TYPE_CHECKING:
    from watchdog.web.protocols import Operable

log = logging.getLogger(__name__)
SERVICE = web.AppKey("service", object)
SECRET = web.AppKey("secret", str)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return json_response(body, status)


@web.middleware
async def require_secret(request: web.Request, handler: Any) -> web.StreamResponse:
    if not authorised(request, request.app[SECRET]):
        return _json({"error": "unauthorised"}, 401)
    return await handler(request)


def _service(request: web.Request) -> Operable:
    return request.app[SERVICE]  # type: ignore[return-value]


async def status(request: web.Request) -> web.Response:
    return _json(_service(request).health().document)


async def backup(request: web.Request) -> web.Response:
    outcome, error = await _service(request).manual_backup("requested by an admin")
    if outcome is None or outcome.backup is None:
        return _json({"error": error or "backup failed"}, 503)
    manifest = outcome.backup.manifest
    return _json(
        {
            "id": manifest.id,
            "tier": manifest.tier,
            "size_bytes": manifest.size_bytes,
            "created_at": manifest.created_iso,
            "sha256": manifest.sha256,
            "rows": manifest.rows,
        }
    )


async def backups(request: web.Request) -> web.Response:
    service = _service(request)
    now = service.clock.time()
    tiers = {
        tier: (
            {
                "id": summary.id,
                "created_at": summary.created_at,
                "size_bytes": summary.size_bytes,
                "age_s": round(now - summary.created_at, 1),
            }
            if summary
            else None
        )
        for tier, summary in service.state.backups.newest.items()
    }
    return _json({"tiers": tiers})


async def restore(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = {}
    wanted = str(body.get("id") or "latest")
    from_git = bool(body.get("from_git"))
    replay = body.get("replay", True) is not False
    ok, message = await _service(request).manual_restore(wanted, from_git=from_git, replay=replay)
    return _json({"ok": ok, "message": message}, 200 if ok else 409)


async def release_offsite(request: web.Request) -> web.Response:
    message = await _service(request).release_offsite_rotation()
    return _json({"ok": True, "message": message})


async def start_admin(service: Operable) -> tuple[web.AppRunner, AdminEndpoint]:
    secret = secrets.token_urlsafe(32)
    app = web.Application(middlewares=[require_secret])
    app[SERVICE] = service
    app[SECRET] = secret
    app.router.add_get("/status", status)
    app.router.add_post("/backup", backup)
    app.router.add_get("/backups", backups)
    app.router.add_post("/restore", restore)
    app.router.add_post("/offsite/release", release_offsite)
    add_job_routes(app, service)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    endpoint = AdminEndpoint(f"http://127.0.0.1:{port}", secret)
    log.info("admin API on %s (loopback only)", endpoint.url)
    return runner, endpoint
