"""Long operator commands on the admin API, as jobs: ``POST /jobs/<action>`` starts one and
answers at once (202, its id); ``GET /jobs/<id>`` says how it goes (its step, its time) and,
once done, its answer or its one-line error. The work runs as a task of the watchdog's event
loop (its heavy parts in worker threads), so neither the caller's connection nor the watchdog's
other work waits on it, and a command that is interrupted leaves the job to finish.

Every body is checked here, in one place: an action's fields, their types and bounds."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from conf.layout import TIERS
from watchdog.runtime.actions import RequestFailed
from watchdog.web.public import json_response

if TYPE_CHECKING:
    from watchdog.web.protocols import Operable

log = logging.getLogger(__name__)

KEEP_FINISHED = 32
"""Finished jobs remembered for their callers; the oldest are forgotten first."""
MAX_RUNNING = 4
ID_LIMIT = 200
REASON_LIMIT = 200


class BadRequest(Exception):
    pass


@dataclass
class Job:
    id: str
    action: str
    step: str
    started: float = field(default_factory=time.monotonic)
    state: str = "running"
    result: Any = None
    error: str | None = None
    ended: float | None = None
    task: asyncio.Task[None] | None = None

    def say(self, step: str) -> None:
        self.step = step

    def document(self) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.monotonic()
        body: dict[str, Any] = {
            "id": self.id,
            "action": self.action,
            "state": self.state,
            "step": self.step,
            "elapsed_s": round(end - self.started, 2),
        }
        if self.state == "done":
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


Work = Callable[[Job], Awaitable[Any]]


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._numbers = itertools.count(1)

    def running(self) -> int:
        return sum(job.state == "running" for job in self._jobs.values())

    def start(self, action: str, step: str, work: Work) -> Job:
        job = Job(f"{action}-{next(self._numbers)}", action, step)
        self._jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, work))
        finished = [j for j in self._jobs.values() if j.state != "running"]
        for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[old.id]
        log.info("admin job %s started (%s)", job.id, step)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def _run(self, job: Job, work: Work) -> None:
        try:
            job.result = await work(job)
            job.state = "done"
        except RequestFailed as error:
            job.state, job.error = "failed", str(error)
        except Exception as error:  # the caller is told; the watchdog goes on
            log.exception("admin job %s failed", job.id)
            job.state, job.error = "failed", f"{type(error).__name__}: {error}"
        finally:
            job.ended = time.monotonic()
        log.info("admin job %s %s in %.1f s", job.id, job.state, job.ended - job.started)


JOBS = web.AppKey("jobs", Jobs)
SERVICE = web.AppKey("jobs_service", object)


def _service(request: web.Request) -> Operable:
    return request.app[SERVICE]  # type: ignore[return-value]


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object")
    return body


def _text(body: dict[str, Any], key: str, limit: int, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise BadRequest(f"{key}: a short printable text, or absent")
    return value


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{key}: true or false")
    return value


def _backup(body: dict[str, Any], service: Operable) -> tuple[str, Work]:
    tier = _text(body, "tier", 16, "manual")
    if tier not in TIERS:
        raise BadRequest(f"tier: one of {', '.join(TIERS)}")
    reason = _text(body, "reason", REASON_LIMIT, "manual (command line)")
    assert reason is not None
    return f"{tier} backup: copying and proving it", lambda job: service.requests.backup(
        tier, reason
    )


def _verify(body: dict[str, Any], service: Operable) -> tuple[str, Work]:
    wanted = _text(body, "id", ID_LIMIT)
    every = _flag(body, "all", False)
    if wanted and every:
        raise BadRequest("give an id or all, not both")
    return "verifying", lambda job: service.requests.verify(wanted, every, job.say)


def _drill(body: dict[str, Any], service: Operable) -> tuple[str, Work]:
    return (
        "restore drill: restoring each tier's newest backup",
        lambda job: service.requests.drill(),
    )


def _restore(body: dict[str, Any], service: Operable) -> tuple[str, Work]:
    wanted = _text(body, "id", ID_LIMIT, "latest")
    assert wanted is not None
    from_git = _flag(body, "from_git", False)
    replay = _flag(body, "replay", True)

    async def work(job: Job) -> dict[str, Any]:
        ok, message = await service.manual_restore(wanted, from_git=from_git, replay=replay)
        if not ok:
            raise RequestFailed(message)
        return {"message": message}

    where = "offsite backup" if from_git else "backup"
    return f"restoring {where} {wanted} (the bot is held)", work


ACTIONS: dict[str, Callable[[dict[str, Any], Operable], tuple[str, Work]]] = {
    "backup": _backup,
    "verify": _verify,
    "drill": _drill,
    "restore": _restore,
}


async def start_job(request: web.Request) -> web.Response:
    jobs = request.app[JOBS]
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        return json_response({"error": "no such action"}, 404)
    if jobs.running() >= MAX_RUNNING:
        return json_response({"error": "busy: too many commands running; try again"}, 429)
    try:
        step, work = action(await _body(request), _service(request))
    except BadRequest as error:
        return json_response({"error": str(error)}, 400)
    job = jobs.start(request.match_info["action"], step, work)
    return json_response(job.document(), 202)


async def job_state(request: web.Request) -> web.Response:
    job = request.app[JOBS].get(request.match_info["job"])
    if job is None:
        return json_response({"error": "no such job (finished long ago, or another run's)"}, 404)
    return json_response(job.document())


async def catalogue(request: web.Request) -> web.Response:
    tier = request.query.get("tier") or None
    if tier is not None and tier not in TIERS:
        return json_response({"error": f"tier: one of {', '.join(TIERS)}"}, 400)
    return json_response({"backups": await _service(request).requests.catalogue(tier)})


def add_job_routes(app: web.Application, service: Operable) -> None:
    app[JOBS] = Jobs()
    app[SERVICE] = service
    app.router.add_post("/jobs/{action}", start_job)
    app.router.add_get("/jobs/{job}", job_state)
    app.router.add_get("/catalogue", catalogue)
