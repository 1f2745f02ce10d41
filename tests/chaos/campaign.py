"""The campaign: start the stack, feed it users, inject faults one at a time in an order and with
parameters drawn from the seed, prove each one recovered, then settle, stop cleanly and account
for every acknowledged update. :func:`run` returns a :class:`Result` whose ``failures`` say what,
if anything, makes the campaign fail."""

from __future__ import annotations

import json
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos import report
from tests.chaos.accounting import Account, Window, account
from tests.chaos.context import Context, Failed, Timeout
from tests.chaos.fakeapi import RecordingTelegramAPI
from tests.chaos.faults import FAULTS, KINDS, WINDOW_EXCUSED, Fault, make_foreign_wal
from tests.chaos.monitor import Monitor
from tests.chaos.secrets_scan import Leak, scan_files, scan_text
from tests.chaos.stack import ChaosStack, Secrets, StackSettings
from tests.chaos.workload import Workload

SHORT_KINDS = (
    "kill_bot",
    "delete_db",
    "kill_watchdog",
    "page_flips",
    "deploy",
    "stale_wal",
    "kill_supervisord",
    "corrupt_backup",
)
"""The short form's faults (test_chaos.py): the ones that take seconds. Not in it: disk_full
(a minute: the offsite push it fails is retried after 60 s), git_down (the same backoff),
hang_bot (the heartbeat timeout), forged_package and lost_disk (pushes every 30 s)."""

LINGER_OK = frozenset({"backups", "offsite", "drill", "files", "recovery", "disk"})
"""Checks whose lasting degradation later faults may be judged without (never the bot's, the
database's or the supervision's)."""

TYPICAL = {
    "git_down": 100.0,
    "forged_package": 45.0,
    "hang_bot": 45.0,
    "deploy": 25.0,
    "lost_disk": 25.0,
    "disk_full": 25.0,
}
"""Seconds a fault usually takes, injection to recovery (default 15): none starts that would
not fit before the end."""


@dataclass
class Options:
    duration: float = 600.0
    seed: int = 1
    users: int = 6
    rate: float = 5.0
    drafts: bool = True
    settle: tuple[float, float] = (4.0, 12.0)
    final_settle: float = 10.0
    kinds: tuple[str, ...] | None = None
    once: bool = False
    """Each kind at most once (the short form)."""
    workdir: Path | None = None
    keep: bool = False
    tmpfs_size: str = "256m"
    rss_margin_mb: float = 25.0
    rss_margin_ratio: float = 0.5
    ready_timeout: float = 120.0

    @classmethod
    def short(cls, seed: int = 3, duration: float = 90.0) -> Options:
        return cls(
            duration=duration,
            seed=seed,
            users=4,
            rate=4.0,
            drafts=False,
            settle=(1.0, 3.0),
            final_settle=4.0,
            kinds=SHORT_KINDS,
            once=True,
        )


@dataclass
class FaultRun:
    number: int
    kind: str
    about: str
    started_s: float
    injected_at: float
    detail: str = ""
    evidence: str | None = None
    recovered: bool = False
    recover_s: float | None = None
    problems: list[str] = field(default_factory=list)
    window: Window | None = None
    waited_for: list[str] = field(default_factory=list)
    """What /health said while the recovery was awaited (each distinct verdict once)."""


@dataclass
class Result:
    options: Options
    workdir: Path
    runs: list[FaultRun] = field(default_factory=list)
    account: Account | None = None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    final_health: dict[str, Any] | None = None
    rss: dict[str, float] = field(default_factory=dict)
    overlaps: list[tuple[float, list[int]]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def render(self) -> str:
        kinds = [fault.kind for fault in FAULTS]
        parts = [
            f"Chaos campaign: seed {self.options.seed}, {self.elapsed:.0f} s, "
            f"{len(self.runs)} faults, workdir {self.workdir}"
            + ("" if self.workdir.exists() else " (removed: nothing to look at)"),
            "",
            report.fault_table(self.runs, kinds),
            "",
        ]
        if self.account is not None:
            parts += [report.updates_table(self.account), ""]
        parts += [report.sequence_table(self.runs), ""]
        parts += report.waits(self.runs)
        if self.account is not None:
            parts += self._loss_lines()
        parts += [f"- {note}" for note in self.notes]
        if self.skipped:
            parts += [f"- not injected: {kind} ({why})" for kind, why in self.skipped.items()]
        parts.append("")
        parts.append("PASS" if self.ok else "FAIL:\n" + "\n".join(f"- {f}" for f in self.failures))
        return "\n".join(parts)

    def _loss_lines(self) -> list[str]:
        acc = self.account
        assert acc is not None
        lines = [
            f"- window-excused fault kinds: {', '.join(sorted(WINDOW_EXCUSED)) or 'none'}",
        ]
        by_window: dict[str, list[Any]] = {}
        for lost in acc.lost_in_window:
            by_window.setdefault(lost.reason, []).append(lost)
        for reason, losses in by_window.items():
            ids = [lost.update.update_id for lost in losses]
            lines.append(
                f"- lost {reason}: {len(ids)} updates ({ids[0]}–{ids[-1]}), acknowledged "
                f"{clock(losses[0].acked_at)}–{clock(losses[-1].acked_at)}"
            )
        for lost in acc.lost_otherwise[:LISTED]:
            lines.append(
                f"- LOST update {lost.update.update_id} ({lost.update.kind} from "
                f"{lost.update.user_id}, acknowledged {clock(lost.acked_at)}): {lost.reason}"
                + (" [update_id recorded, note missing]" if lost.note_only else "")
            )
        if len(acc.lost_otherwise) > LISTED:
            lines.append(f"- … {len(acc.lost_otherwise) - LISTED} more in report.json")
        for user, text, count in acc.double_notes:
            lines.append(f"- double effect: user {user}'s note {text!r} stored {count} times")
        for update, count in acc.double_messages:
            lines.append(f"- double effect: update {update} stored as {count} messages")
        for user, counted, stored in acc.overcounted_users:
            lines.append(f"- note: user {user} counted {counted} messages, {stored} stored")
        return lines


LISTED = 40
"""Lost updates listed one by one in the printed report (all of them in report.json)."""


def _orphaned(process: Any) -> bool:
    try:
        return process.ppid() == 1
    except Exception:
        return False


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


class Campaign:
    def __init__(self, options: Options, out: Any = print) -> None:
        self.options = options
        self.out = out
        self.rng = random.Random(f"faults-{options.seed}")
        self.workdir = options.workdir or Path(
            tempfile.mkdtemp(prefix=f"erixcast-chaos-s{options.seed}-")
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.result = Result(options, self.workdir)
        self.started = time.monotonic()
        self.lingering: list[tuple[str, str]] = []

    def say(self, text: str) -> None:
        self.out(f"[chaos {time.monotonic() - self.started:6.1f} s] {text}")

    # --------------------------------------------------------------------------------- run
    def run(self) -> Result:
        options = self.options
        secrets_ = Secrets.generate()
        fake = RecordingTelegramAPI(token=secrets_.bot_token)
        fake.start()
        settings = StackSettings(tmpfs_size=options.tmpfs_size)
        stack = ChaosStack(self.workdir, settings, fake, secrets_)
        workload = Workload(
            fake, options.seed, users=options.users, rate=options.rate, drafts=options.drafts
        )
        monitor = Monitor(stack)
        ctx: Context | None = None
        try:
            stack.prepare()
            if not stack.tmpfs:
                self.result.notes.append(
                    f"DATA_DIR not on a tmpfs (mounting failed: {stack.tmpfs_error}): "
                    "disk_full not injected"
                )
            ctx = Context(
                stack,
                fake,
                workload,
                monitor,
                make_foreign_wal(self.workdir / "foreign"),
                log=self.say,
            )
            monitor.start()
            stack.start()
            self.say(
                f"stack starting: DATA_DIR {stack.data} (tmpfs {stack.tmpfs}), port {stack.port}"
            )
            try:
                ctx.wait(ctx.bot_running, 90, "the bot running")
                workload.start()
                ctx.wait(lambda: self.warmed_up(ctx), 120, "backups, a drill, a push, healthy")
            except Timeout as error:
                self.result.failures.append(f"the stack did not come up: {error}")
                return self.result
            self.say("stack up; workload running")
            self.campaign(ctx)
            self.finish(ctx)
        finally:
            workload.stop()
            monitor.stop()
            self.result.elapsed = time.monotonic() - self.started
            stack.close()
            fake.stop()
            self.cleanup_workdir()
        return self.result

    def warmed_up(self, ctx: Context) -> bool:
        """A first backup, the first restore drill and the first push done, /health healthy:
        the first faults must not land on the start-up's one-off work."""
        doc = ctx.health()
        if not doc or not ctx.monitor.backups:
            return False
        backups = doc["backups"]
        return bool(
            backups["drill"]["last_at"]
            and backups["offsite"]["newest_id"]
            and self.healthy(ctx) is None
        )

    # ---------------------------------------------------------------------------- faults
    def enabled(self, ctx: Context) -> list[type[Fault]]:
        wanted = self.options.kinds or tuple(KINDS)
        chosen = []
        for kind in wanted:
            fault = KINDS[kind]
            if fault.needs_tmpfs and not ctx.stack.tmpfs:
                self.result.skipped[kind] = "needs a tmpfs"
                continue
            chosen.append(fault)
        return chosen

    def campaign(self, ctx: Context) -> None:
        deadline = self.started + self.options.duration
        kinds = self.enabled(ctx)
        queue: list[type[Fault]] = []
        done: set[str] = set()
        number = 0
        while True:
            if not queue:
                if self.options.once and done >= {k.kind for k in kinds}:
                    break
                queue = [k for k in kinds if not (self.options.once and k.kind in done)]
                self.rng.shuffle(queue)
            remaining = deadline - time.monotonic()
            fitting = [k for k in queue if TYPICAL.get(k.kind, 15.0) <= remaining]
            if not fitting:
                break
            choice, why_not = None, {}
            for candidate in fitting:
                fault = candidate()
                reason = fault.ready(ctx)
                if reason is None:
                    choice = fault
                    break
                why_not[candidate.kind] = reason
            if choice is None:
                self.say(f"no fault ready ({why_not}); settling")
                time.sleep(3)  # pacing: let backups and pushes happen
                if time.monotonic() > deadline:
                    break
                continue
            queue.remove(type(choice))
            number += 1
            self.run_fault(ctx, choice, number)
            done.add(choice.kind)
            settle = self.rng.uniform(*self.options.settle)
            time.sleep(settle)  # the settle period: the workload alone
            self.ensure_ready(ctx)
        for kind in {k.kind for k in kinds} - done:
            self.result.skipped.setdefault(kind, "did not fit in the duration")

    def run_fault(self, ctx: Context, fault: Fault, number: int) -> None:
        at_wall, at = time.time(), time.monotonic()
        run = FaultRun(number, fault.kind, fault.about, at - self.started, at_wall)
        self.result.runs.append(run)
        self.say(f"fault #{number}: {fault.kind} — {fault.about}")
        try:
            run.detail = fault.inject(ctx, self.rng)
        except Exception as error:
            run.detail = f"injection failed: {error!r}"
            run.problems.append(run.detail)
        over = time.monotonic()  # a fault that lasts (a full disk, a server down) is over now
        self.say(f"  injected: {run.detail}")
        if not run.problems:
            try:
                run.evidence = ctx.wait(
                    lambda: fault.evidence(ctx, at_wall), fault.evidence_timeout, "the evidence"
                )
            except (Timeout, Failed) as error:
                run.problems.append(str(error))
        ok, when, why = self.await_recovered(
            ctx, fault.tolerate, fault.recover_timeout, seen=run.waited_for
        )
        if not ok:
            run.problems.append(f"not recovered: {why}")
        run.problems += fault.check(ctx, at_wall)
        orphans = [
            f"{ctx.stack.role(p)} pid {p.pid}" for p in ctx.stack.processes() if _orphaned(p)
        ]
        if orphans:
            run.problems.append(f"re-parented to PID 1 and still running: {orphans}")
        run.recovered = not run.problems
        if ok and when is not None:
            run.recover_s = when - over
        try:
            fault.cleanup(ctx)
        except Exception as error:
            run.problems.append(f"clean-up failed: {error!r}")
        if fault.destroys_data:
            recovered_at = at_wall + run.recover_s if run.recover_s is not None else None
            run.window = Window(
                fault.kind, number, fault.window_start(ctx, at_wall), at_wall, recovered_at
            )
        self.say(
            f"  {'recovered' if run.recovered else 'NOT RECOVERED'}"
            + (f" in {run.recover_s:.1f} s" if run.recover_s is not None else "")
            + f": {run.evidence or '-'}"
            + (f"; problems: {run.problems}" if run.problems else "")
        )

    # ---------------------------------------------------------------------------- health
    def healthy(
        self, ctx: Context, tolerate: tuple[tuple[str, str], ...] = (), strict: bool = False
    ) -> str | None:
        """None when /health is 200, healthy (but for tolerated checks, and unless ``strict``
        for what an earlier fault left lingering), the bot running."""
        if not strict:
            tolerate = (*tolerate, *self.lingering)
        answer = ctx.stack.health()
        if answer is None:
            return "no answer on /health"
        status, doc = answer
        if status != 200:
            return f"HTTP {status}"
        if (doc.get("bot") or {}).get("status") != "running":
            return f"bot {(doc.get('bot') or {}).get('status')}"
        bad = []
        for name, check in (doc.get("checks") or {}).items():
            if check.get("status") == "healthy":
                continue
            if any(name == t and words in check.get("detail", "") for t, words in tolerate):
                continue
            bad.append(f"{name}: {check.get('status')} ({check.get('detail')})")
        return "; ".join(bad) or None

    def await_recovered(
        self,
        ctx: Context,
        tolerate: tuple[tuple[str, str], ...],
        timeout: float,
        strict: bool = False,
        seen: list[str] | None = None,
    ) -> tuple[bool, float | None, str | None]:
        """A probe answered and /health healthy, both: (True, when) or (False, None, why)."""
        deadline = time.monotonic() + timeout
        names: list[str] = []
        probed_at = 0.0
        answered = False
        verdict: str | None = "not asked yet"
        while True:
            now = time.monotonic()
            if not answered:
                if not names or now - probed_at > 15:
                    names.append(ctx.workload.probe()[1])
                    probed_at = now
                answered = any(ctx.workload.answered(name) for name in names)
            verdict = self.healthy(ctx, tolerate, strict)
            if seen is not None and verdict and verdict not in seen:
                seen.append(verdict)
            if answered and verdict is None:
                return True, time.monotonic(), None
            if now > deadline:
                probe = "the probe answered" if answered else f"no answer to probes {names}"
                return False, None, f"{probe}; /health: {verdict}"
            time.sleep(0.2)

    def ensure_ready(self, ctx: Context) -> None:
        """Healthy again before the next fault; if not, the last fault did not recover."""
        ok, _, why = self.await_recovered(ctx, (), self.options.ready_timeout)
        if ok or not self.result.runs:
            return
        last = self.result.runs[-1]
        last.problems.append(f"not healthy again before the next fault: {why}")
        last.recovered = False
        self.say(f"  fault #{last.number} {last.kind}: {last.problems[-1]}")
        answer = ctx.stack.health()
        if answer is None or answer[0] == 503:
            # What Render does with a service whose /health fails for 60 s: restart it.
            code, seconds = ctx.stack.stop()
            ctx.stack.start()
            ok, _, why = self.await_recovered(ctx, (), self.options.ready_timeout)
            last.problems.append(
                f"the platform's restart (503 for over 60 s; the stop exited {code} in "
                f"{seconds:.0f} s) {'brought it back' if ok else f'did not help: {why}'}"
            )
            self.say(f"  {last.problems[-1]}")
            if ok:
                return
        # What it left behind stays (a failed drill is retried a day later): the faults after
        # it are judged without it, so that each is still measured; it is reported once.
        doc = ctx.health() or {}
        for name, check in (doc.get("checks") or {}).items():
            if check.get("status") != "healthy" and name in LINGER_OK:
                words = str(check.get("detail", ""))[:24]
                self.lingering.append((name, words))
                self.result.notes.append(
                    f"from fault #{last.number} ({last.kind}) on, /health {name} stayed "
                    f"{check.get('status')} ({check.get('detail')}); later faults judged "
                    "without it"
                )

    # ---------------------------------------------------------------------------- finish
    def finish(self, ctx: Context) -> None:
        result, stack, fake, workload = self.result, ctx.stack, ctx.fake, ctx.workload
        self.say(f"final settle ({self.options.final_settle:.0f} s)")
        time.sleep(self.options.final_settle)  # the final settle: workload alone
        workload.stop()
        last = max(workload.snapshot(), default=0)
        try:
            ctx.wait(lambda: fake.confirmed_offset > last, 90, "every update acknowledged")
        except Timeout as error:
            result.failures.append(str(error))
        ok, _, why = self.await_recovered(ctx, (), self.options.ready_timeout, strict=True)
        result.final_health = ctx.health()
        if not ok:
            result.failures.append(f"/health not healthy after the final settle: {why}")
        served = {
            "/health": stack.http_text("/health"),
            "/metrics": stack.http_text("/metrics", auth=True),
            "/stats": stack.http_text("/stats", auth=True),
        }
        self.say("clean stop (SIGTERM to supervisord)")
        code, seconds = stack.stop()
        if code != 0:
            result.failures.append(f"the clean stop: supervisord exited with {code}")
        try:
            ctx.wait(lambda: not stack.processes(), 10, "no process of the stack")
        except Timeout:
            result.leftovers = [
                f"{stack.role(p)} pid {p.pid} ({' '.join(p.cmdline())})" for p in stack.processes()
            ]
            result.failures.append(f"left running after the stop: {result.leftovers}")
        ctx.monitor.stop()
        self.say(f"stopped in {seconds:.1f} s; accounting")
        sent = workload.snapshot()
        acked = {uid: t for uid in sent if (t := fake.ack_time(uid)) is not None}
        windows = [run.window for run in result.runs if run.window is not None]
        result.account = account(stack.database, sent, acked, windows)
        acc = result.account
        if acc.database_error:
            result.failures.append(f"the final database could not be read: {acc.database_error}")
        if acc.lost_otherwise:
            reasons = ", ".join(f"{n} {r}" for r, n in acc.reasons().items())
            result.failures.append(
                f"{len(acc.lost_otherwise)} acknowledged updates lost: {reasons}"
            )
        if acc.double_effects:
            result.failures.append(f"{acc.double_effects} double effects")
        unrecovered = [f"#{r.number} {r.kind}" for r in result.runs if not r.recovered]
        if unrecovered:
            result.failures.append(f"faults not recovered: {', '.join(unrecovered)}")
        result.overlaps = list(ctx.monitor.overlaps)
        if result.overlaps:
            first = result.overlaps[0]
            result.failures.append(
                f"two bots alive at once, {len(result.overlaps)} samples "
                f"(first at {first[0] - self.started:.0f} s: pids {first[1]})"
            )
        self.check_secrets(ctx, served)
        self.check_rss(ctx)
        self.write(ctx)

    def check_secrets(self, ctx: Context, served: dict[str, str]) -> None:
        named = ctx.stack.secrets.named()
        for number, secret in enumerate(sorted(ctx.monitor.admin_secrets)):
            named[f"admin API secret {number + 1}"] = secret
        leaks = scan_files([self.workdir], named, ctx.stack.data)
        for where, text in served.items():
            leaks += scan_text(where, text, named)
        self.result.leaks = leaks
        if leaks:
            shown = sorted({f"{leak.secret} in {leak.where}" for leak in leaks})
            self.result.failures.append(f"secrets found: {shown[:10]}")
        self.result.notes.append(
            f"secret scan: {len(named)} secrets ({len(ctx.monitor.admin_secrets)} admin API "
            f"secrets seen), {'no leak' if not leaks else f'{len(leaks)} leaks'}"
        )

    def check_rss(self, ctx: Context) -> None:
        samples = ctx.monitor.rss
        if len(samples) < 9:
            self.result.notes.append("watchdog RSS: too few samples")
            return
        begin, end = samples[0][0], samples[-1][0]
        third = (end - begin) / 3
        first = max(rss for t, _, rss in samples if t <= begin + third)
        last = max(rss for t, _, rss in samples if t >= end - third)
        mb = 1 << 20
        limit = first + max(self.options.rss_margin_mb * mb, self.options.rss_margin_ratio * first)
        self.result.rss = {
            "first_third_max_mb": first / mb,
            "last_third_max_mb": last / mb,
            "overall_max_mb": max(rss for _, _, rss in samples) / mb,
            "median_mb": statistics.median(rss for _, _, rss in samples) / mb,
            "watchdogs": len(ctx.monitor.watchdog_pids),
        }
        self.result.notes.append(
            f"watchdog RSS: first third max {first / mb:.1f} MB, last third max {last / mb:.1f} MB "
            f"(limit {limit / mb:.1f} MB), {len(samples)} samples over "
            f"{len(ctx.monitor.watchdog_pids)} watchdog processes"
        )
        if last > limit:
            self.result.failures.append(
                f"watchdog RSS grew: {first / mb:.1f} MB → {last / mb:.1f} MB (limit {limit / mb:.1f})"
            )

    def write(self, ctx: Context) -> None:
        """The report and, for a post-mortem, a copy of DATA_DIR (the tmpfs goes away)."""
        result = self.result
        if not result.ok or self.options.keep:
            shutil.copytree(ctx.stack.data, self.workdir / "final-data", dirs_exist_ok=True)
        document = {
            "seed": self.options.seed,
            "duration": self.options.duration,
            "faults": [
                {k: v for k, v in vars(run).items() if k != "window"} for run in result.runs
            ],
            "failures": result.failures,
            "notes": result.notes,
            "rss": result.rss,
            "final_health": result.final_health,
        }
        if result.account is not None:
            acc = result.account
            document["updates"] = {
                "sent": acc.sent,
                "acknowledged": acc.acknowledged,
                "present": acc.present,
                "lost": [
                    {
                        "update_id": lost.update.update_id,
                        "kind": lost.update.kind,
                        "user_id": lost.update.user_id,
                        "acknowledged_at": lost.acked_at,
                        "reason": lost.reason,
                        "excused": lost.excused,
                        "note_only": lost.note_only,
                    }
                    for lost in acc.lost
                ],
                "windows": [vars(run.window) for run in result.runs if run.window is not None],
            }
        (self.workdir / "report.json").write_text(json.dumps(document, indent=1, default=str))

    def cleanup_workdir(self) -> None:
        if self.result.ok and not self.options.keep and self.options.workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def run(options: Options, out: Any = print) -> Result:
    return Campaign(options, out).run()
