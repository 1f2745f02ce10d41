"""The fault table. Each fault is a small class: ``inject`` does the damage (and says what it did),
``evidence`` is polled until the stack shows it noticed and handled it, ``check`` adds what must
hold afterwards, ``cleanup`` undoes what an operator would undo. The campaign then asks the
generic question of every fault: does the bot answer a probe, and is /health healthy?

To add a fault: write a class, give it a ``kind``, list it in ``FAULTS``. A fault that destroys
data (what was committed since some backup) says so with ``destroys_data`` and, where the newest
usable backup is not a local one, overrides ``window_start``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any, ClassVar

import psutil

from tests.chaos import forge
from tests.chaos.context import Context, Failed, Timeout, parse_iso
from tests.chaos.stack import BRANCH

PAGE = 4096

WINDOW_EXCUSED = frozenset({"lost_disk"})
LOST_DISK_WINDOW = 25.0
"""Seconds before a lost disk whose updates may be gone: the journal goes offsite every
JOURNAL_OFFSITE_EVERY (10 s in the campaign), plus a maintenance round (5 s) and the push itself.
An update acknowledged earlier and lost is not excused."""
"""Fault kinds whose destroyed-data window is excused: an acknowledged update lost because it
was committed after the newest good backup taken before such a fault (and before the fault) is
"lost within a destroyed-data window", not a failure. With the update journal, deletion, page
damage, a foreign -wal, a full disk and a corrupt newest backup lose nothing (replay gives back
every acknowledged update); only a lost disk keeps a window (what came after the journal's last
push offsite)."""


class Fault:
    kind: ClassVar[str] = ""
    about: ClassVar[str] = ""
    destroys_data: ClassVar[bool] = False
    needs_tmpfs: ClassVar[bool] = False
    evidence_timeout: ClassVar[float] = 90.0
    recover_timeout: ClassVar[float] = 120.0
    tolerate: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(check, words in its detail) that may stay degraded while this fault is recovered from."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}

    def ready(self, ctx: Context) -> str | None:
        """Why this fault cannot be injected now (None: it can)."""
        return None

    def inject(self, ctx: Context, rng: random.Random) -> str:
        raise NotImplementedError

    def evidence(self, ctx: Context, at: float) -> str | None:
        """Polled after ``inject``: a sentence once the stack has handled the fault."""
        return "injected"

    def check(self, ctx: Context, at: float) -> list[str]:
        """Problems that remain once recovered (empty: none)."""
        return []

    def cleanup(self, ctx: Context) -> None:
        pass

    def window_start(self, ctx: Context, at: float) -> float | None:
        """When the newest good backup before ``at`` was taken (None: no backup at all)."""
        good = [b for b in ctx.monitor.backups_before(at) if b.id not in ctx.corrupted]
        return good[-1].created_at if good else None


def _one(ctx: Context, role: str, timeout: float = 30.0) -> psutil.Process:
    return ctx.wait(lambda: (found := ctx.stack.by_role(role)) and found[0], timeout, f"a {role}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ----------------------------------------------------------------------------- processes
class KillBot(Fault):
    kind = "kill_bot"
    about = "kill -9 of the bot"

    def inject(self, ctx: Context, rng: random.Random) -> str:
        bot = _one(ctx, "bot")
        self.facts["pid"] = bot.pid
        bot.send_signal(signal.SIGKILL)
        return f"bot pid {bot.pid}"

    def evidence(self, ctx: Context, at: float) -> str | None:
        doc = ctx.bot_running()
        pid = doc and doc["bot"]["pid"]
        if pid and pid != self.facts["pid"] and _gone(self.facts["pid"]):
            return f"new bot pid {pid}"
        return None


class HangBot(Fault):
    kind = "hang_bot"
    about = "SIGSTOP of the bot (alive, silent): the heartbeat must catch it"
    evidence_timeout = 120.0

    def inject(self, ctx: Context, rng: random.Random) -> str:
        bot = _one(ctx, "bot")
        self.facts["pid"] = bot.pid
        bot.send_signal(signal.SIGSTOP)
        return f"bot pid {bot.pid} stopped"

    def evidence(self, ctx: Context, at: float) -> str | None:
        doc = ctx.bot_running()
        pid = doc and doc["bot"]["pid"]
        if pid and pid != self.facts["pid"] and _gone(self.facts["pid"]):
            return f"stopped bot replaced by pid {pid} after {time.time() - at:.1f} s"
        return None

    def cleanup(self, ctx: Context) -> None:
        with contextlib.suppress(psutil.Error):
            psutil.Process(self.facts["pid"]).send_signal(signal.SIGCONT)


class KillWatchdog(Fault):
    kind = "kill_watchdog"
    about = "kill -9 of the watchdog (supervisord restarts it; the bot must follow it)"

    def inject(self, ctx: Context, rng: random.Random) -> str:
        watchdog = _one(ctx, "watchdog")
        bots = ctx.stack.by_role("bot")
        self.facts.update(pid=watchdog.pid, bots=[b.pid for b in bots])
        watchdog.send_signal(signal.SIGKILL)
        return f"watchdog pid {watchdog.pid}"

    def evidence(self, ctx: Context, at: float) -> str | None:
        watchdogs = ctx.stack.by_role("watchdog")
        if not watchdogs or any(w.pid == self.facts["pid"] for w in watchdogs):
            return None
        if not all(_gone(pid) for pid in self.facts["bots"]):
            return None
        doc = ctx.bot_running()
        return doc and f"new watchdog pid {watchdogs[0].pid}, bot pid {doc['bot']['pid']}"


class Deploy(Fault):
    kind = "deploy"
    about = "SIGTERM to supervisord, then a start with a new RENDER_GIT_COMMIT"

    def inject(self, ctx: Context, rng: random.Random) -> str:
        code, seconds = ctx.stack.stop()
        self.facts.update(code=code, seconds=seconds)
        try:
            ctx.wait(lambda: not ctx.stack.processes(), 10, "every process gone after the stop")
            self.facts["left"] = []
        except Timeout:
            self.facts["left"] = [f"{ctx.stack.role(p)} {p.pid}" for p in ctx.stack.processes()]
        ctx.stack.deploy()
        ctx.stack.start()
        return (
            f"stopped with exit code {code} in {seconds:.1f} s; new commit {ctx.stack.commit[:12]}"
        )

    def evidence(self, ctx: Context, at: float) -> str | None:
        deploys = [
            b for b in ctx.monitor.backups.values() if b.tier == "deploy" and b.created_at >= at
        ]
        if deploys and ctx.bot_running():
            return f"deploy backup {deploys[-1].id}"
        return None

    def check(self, ctx: Context, at: float) -> list[str]:
        problems = []
        if self.facts["code"] != 0:
            problems.append(f"supervisord exited with {self.facts['code']} on SIGTERM")
        if self.facts["seconds"] > 30:
            problems.append(f"the stop took {self.facts['seconds']:.1f} s (> 30 s)")
        if self.facts["left"]:
            problems.append(f"left running after the stop: {', '.join(self.facts['left'])}")
        return problems


class KillSupervisord(Fault):
    kind = "kill_supervisord"
    about = "kill -9 of supervisord (the watchdog orphaned); the next start must reap it"

    def inject(self, ctx: Context, rng: random.Random) -> str:
        proc = ctx.stack.supervisord
        assert proc is not None
        watchdogs = [w.pid for w in ctx.stack.by_role("watchdog")]
        self.facts.update(pid=proc.pid, watchdogs=watchdogs)
        proc.popen.send_signal(signal.SIGKILL)
        proc.wait(10)
        delay = rng.choice([0.0, 0.0, 0.5, 2.0])
        time.sleep(delay)  # part of the fault: how soon the platform starts the next one
        ctx.stack.start()
        return f"supervisord pid {proc.pid} (watchdog {watchdogs}); restarted after {delay} s"

    def evidence(self, ctx: Context, at: float) -> str | None:
        proc = ctx.stack.supervisord
        assert proc is not None
        if proc.popen.poll() is not None:
            raise Failed(f"the new supervisord exited with {proc.popen.returncode}")
        if not all(_gone(pid) for pid in self.facts["watchdogs"]):
            return None
        watchdogs = ctx.stack.by_role("watchdog")
        doc = ctx.bot_running()
        if len(watchdogs) == 1 and doc:
            return f"old watchdog gone; new one pid {watchdogs[0].pid}"
        return None


# -------------------------------------------------------------------------- the database
class PageFlips(Fault):
    kind = "page_flips"
    about = "bit flips or random bytes over random pages of the live database"
    destroys_data = True

    def inject(self, ctx: Context, rng: random.Random) -> str:
        database = ctx.stack.database
        # The bot's pages live in the -wal until a checkpoint (SQLite's own at 1000 pages): one
        # now, as SQLite would run it, so that the flips land on the data and not on nothing.
        checkpoint = checkpoint_now(database)
        pages = max(1, database.stat().st_size // PAGE)
        chosen: set[int] = set()
        if rng.random() < 0.25:
            chosen.add(1)
        if rng.random() < 0.35:
            root = messages_root(database)
            if root:
                chosen.add(root)
        want = rng.randint(1, 4)
        others = list(range(2, pages + 1))
        rng.shuffle(others)
        for page in others:
            if len(chosen) >= want:
                break
            chosen.add(page)
        how = rng.choice(["bit flips", "random bytes"])
        fd = os.open(database, os.O_RDWR)
        try:
            for page in sorted(chosen):
                offset = (page - 1) * PAGE
                if how == "random bytes":
                    os.pwrite(fd, rng.randbytes(PAGE), offset)
                    continue
                block = bytearray(os.pread(fd, PAGE, offset))
                for _ in range(40):
                    if block:
                        block[rng.randrange(len(block))] ^= 1 << rng.randrange(8)
                os.pwrite(fd, bytes(block), offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.facts.update(pages=sorted(chosen), how=how, quarantined=ctx.quarantined())
        return f"{how} on pages {sorted(chosen)} of {pages} (after a checkpoint: {checkpoint})"

    def evidence(self, ctx: Context, at: float) -> str | None:
        last = ctx.recovered_since(at)
        if last is not None:
            return f"recovered: {last.get('reason')}; restored {last.get('restored_from')}"
        # Flips in free space, or on a page the WAL holds newer (a checkpoint writes it back):
        # nothing for integrity_check to find. Wait for three checks after the flips.
        doc = ctx.health()
        checked = doc and parse_checked(doc)
        if checked and checked > at + 15 and doc["database"]["integrity"] == "ok":
            return "integrity_check found nothing (free space, or overwritten from the WAL)"
        return None


class DeleteDatabase(Fault):
    kind = "delete_db"
    about = "the live database file deleted (sometimes with its -wal and -shm)"
    destroys_data = True

    def inject(self, ctx: Context, rng: random.Random) -> str:
        return delete_database(ctx, rng)

    def evidence(self, ctx: Context, at: float) -> str | None:
        last = ctx.recovered_since(at)
        if last is not None and ctx.bot_running():
            return f"recovered: {last.get('reason')}; restored {last.get('restored_from')}"
        return None


class CorruptBackup(Fault):
    kind = "corrupt_backup"
    about = "the newest backup damaged, then the database deleted: recovery must skip it"
    destroys_data = True

    def ready(self, ctx: Context) -> str | None:
        return None if len(ctx.monitor.local_backup_files()) >= 2 else "fewer than 2 backups"

    def inject(self, ctx: Context, rng: random.Random) -> str:
        newest = ctx.monitor.local_backup_files()[-1]
        path = Path(newest.file)
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.seek(size // 2)
            handle.write(rng.randbytes(512))
            handle.flush()
            os.fsync(handle.fileno())
        ctx.corrupted.add(newest.id)
        self.facts["backup"] = newest.id
        return f"backup {newest.id} damaged; " + delete_database(ctx, rng)

    def evidence(self, ctx: Context, at: float) -> str | None:
        last = ctx.recovered_since(at)
        if last is None or not ctx.bot_running():
            return None
        if last.get("restored_from") == self.facts["backup"]:
            raise Failed(f"restored the damaged backup {self.facts['backup']}")
        named = any(self.facts["backup"] in r for r in last.get("rejected") or [])
        return f"restored {last.get('restored_from')}" + (
            f"; refused {self.facts['backup']}" if named else ""
        )


class StaleWal(Fault):
    kind = "stale_wal"
    about = "everything killed -9, a -wal of another database put beside ours, a start"
    destroys_data = True

    def inject(self, ctx: Context, rng: random.Random) -> str:
        pids = ctx.stack.kill_all()
        wal = Path(f"{ctx.stack.database}-wal")
        shutil.copyfile(ctx.foreign_wal, wal)
        kept = rng.random() < 0.5
        if not kept:
            Path(f"{ctx.stack.database}-shm").unlink(missing_ok=True)
        ctx.stack.start()
        return f"killed {len(pids)} processes; foreign -wal; -shm {'kept' if kept else 'removed'}"

    def evidence(self, ctx: Context, at: float) -> str | None:
        doc = ctx.bot_running()
        if doc and doc["database"]["integrity"] == "ok":
            last = ctx.recovered_since(at)
            if last is not None:
                return f"recovered: {last.get('reason')}; restored {last.get('restored_from')}"
            return "no recovery needed (the foreign -wal was not replayed)"
        return None


class DiskFull(Fault):
    kind = "disk_full"
    about = "the tmpfs filled for about 10 s, then freed"
    destroys_data = True
    needs_tmpfs = True
    tolerate = ()

    def inject(self, ctx: Context, rng: random.Random) -> str:
        filler = ctx.stack.disk / "filler"
        written = 0
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 1 << 12, 1 << 9):
                block = b"\0" * size
                while True:
                    try:
                        written += os.write(fd, block)
                    except OSError as error:
                        if error.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        hold = rng.uniform(8, 12)
        free = ctx.stack.disk_usage().free
        offset = ctx.fake.confirmed_offset
        try:
            time.sleep(hold)  # part of the fault: the disk stays full this long
        finally:
            filler.unlink(missing_ok=True)
        self.facts["confirmed"] = ctx.fake.confirmed_offset - offset
        return f"filled {written >> 20} MB ({free} bytes left) for {hold:.1f} s"

    def evidence(self, ctx: Context, at: float) -> str | None:
        return f"{self.facts['confirmed']} updates confirmed while full"


# -------------------------------------------------------------------------------- offsite
class GitOutage(Fault):
    kind = "git_down"
    about = "the git server refusing connections, or hanging, until a push has failed"
    evidence_timeout = 200.0
    recover_timeout = 60.0

    def ready(self, ctx: Context) -> str | None:
        doc = ctx.health()
        return None if doc and doc["backups"]["offsite"]["enabled"] else "offsite not on"

    def inject(self, ctx: Context, rng: random.Random) -> str:
        assert ctx.stack.git is not None
        mode = rng.choice(["down", "down", "hanging"])
        ctx.stack.git.mode = mode
        started = time.monotonic()
        try:
            ctx.wait(
                lambda: (d := ctx.health()) and d["backups"]["offsite"]["failures"] >= 1,
                90,
                "a failed push",
            )
            failed = True
        except Timeout:
            failed = False
        held = time.monotonic() - started
        ctx.stack.git.mode = "up"
        self.facts["failed"] = failed
        self.facts["up_at"] = time.time()
        return f"git server {mode} for {held:.1f} s" + ("" if failed else " (no push failed)")

    def evidence(self, ctx: Context, at: float) -> str | None:
        doc = ctx.health()
        offsite = doc and doc["backups"]["offsite"]
        if offsite and offsite["failures"] == 0 and offsite["last_success"]:
            success = parse_iso(offsite["last_success"])
            if success and success >= int(self.facts["up_at"]):
                return (
                    f"pushed again {success - self.facts['up_at']:.0f} s after the server came back"
                )
        return None

    def cleanup(self, ctx: Context) -> None:
        if ctx.stack.git is not None:
            ctx.stack.git.mode = "up"


class ForgedPackage(Fault):
    kind = "forged_package"
    about = "a forged package (another MAC key, a planted trigger) pushed onto the branch"
    evidence_timeout = 150.0
    tolerate = (("offsite", "refused"),)

    def ready(self, ctx: Context) -> str | None:
        assert ctx.stack.git_repo is not None
        if not forge.tip(ctx.stack.git_repo, BRANCH):
            return "no offsite branch yet"
        if not ctx.monitor.local_backup_files():
            return "no local manifest to copy the shape of"
        return None

    def inject(self, ctx: Context, rng: random.Random) -> str:
        import json

        assert ctx.stack.git_repo is not None
        shape = json.loads(Path(ctx.monitor.local_backup_files()[-1].manifest).read_text())
        backup_id, files = forge.forged_files(ctx.stack.secrets.age_key, shape, time.time())
        forge.plant(ctx.stack.git_repo, BRANCH, backup_id, files)
        ctx.forged.add(backup_id)
        self.facts["id"] = backup_id
        return f"planted {backup_id}"

    def evidence(self, ctx: Context, at: float) -> str | None:
        doc = ctx.health()
        if not doc:
            return None
        refused = doc["backups"]["offsite"].get("refused") or []
        if any(r.get("id") == self.facts["id"] for r in refused):
            return (
                f"refused as {[r.get('kind') for r in refused if r.get('id') == self.facts['id']]}"
            )
        return None

    def check(self, ctx: Context, at: float) -> list[str]:
        assert ctx.stack.git_repo is not None
        if self.facts["id"] not in forge.on_branch(ctx.stack.git_repo, BRANCH):
            return [f"the forged package {self.facts['id']} was deleted from the branch"]
        return []

    def cleanup(self, ctx: Context) -> None:
        assert ctx.stack.git_repo is not None
        with contextlib.suppress(Exception):
            forge.remove(ctx.stack.git_repo, BRANCH, self.facts["id"])
        ctx.forged.discard(self.facts["id"])


class LostDisk(Fault):
    kind = "lost_disk"
    about = "everything killed -9 and DATA_DIR wiped: the branch must bring the data back"
    destroys_data = True
    evidence_timeout = 150.0

    def ready(self, ctx: Context) -> str | None:
        if ctx.forged:
            return "a forged package is on the branch"
        doc = ctx.health()
        if not doc or not doc["backups"]["offsite"]["newest_id"]:
            return "nothing offsite yet"
        return None

    def inject(self, ctx: Context, rng: random.Random) -> str:
        pids = ctx.stack.kill_all()
        data = ctx.stack.data
        for child in list(data.iterdir()) if data.exists() else []:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        ctx.stack.start()
        return f"killed {len(pids)} processes; DATA_DIR emptied"

    def evidence(self, ctx: Context, at: float) -> str | None:
        last = ctx.recovered_since(at)
        if last is not None and ctx.bot_running():
            if last.get("source") != "offsite":
                raise Failed(f"recovered from {last.get('source')}, not the branch: {last}")
            return f"restored {last.get('restored_from')} from the branch"
        return None

    def window_start(self, ctx: Context, at: float) -> float | None:
        pushed = ctx.monitor.offsite_before(at)
        return pushed[-1][1] if pushed else None


FAULTS: tuple[type[Fault], ...] = (
    KillBot,
    KillWatchdog,
    HangBot,
    Deploy,
    KillSupervisord,
    PageFlips,
    DeleteDatabase,
    CorruptBackup,
    StaleWal,
    DiskFull,
    GitOutage,
    ForgedPackage,
    LostDisk,
)
"""Every fault kind the campaign knows, by ``kind``."""
KINDS = {fault.kind: fault for fault in FAULTS}


# --------------------------------------------------------------------------------- helpers
def delete_database(ctx: Context, rng: random.Random) -> str:
    database = ctx.stack.database
    database.unlink()
    companions = rng.random() < 0.5
    if companions:
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    return "database deleted" + (" with its -wal and -shm" if companions else "")


def checkpoint_now(database: Path) -> str:
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=2)) as connection:
            busy, frames, done = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error as error:
        return f"failed: {error}"
    return f"{done} of {frames} frames" + (" (busy)" if busy else "")


def messages_root(database: Path) -> int | None:
    """The root page of the messages table, read from the file alone (no lock, no -shm)."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True, timeout=1)
        ) as connection:
            row = connection.execute(
                "SELECT rootpage FROM sqlite_master WHERE name = 'messages'"
            ).fetchone()
    except sqlite3.Error:
        return None
    return int(row[0]) if row and row[0] else None


def parse_checked(doc: dict[str, Any]) -> float | None:
    return parse_iso((doc.get("database") or {}).get("checked_at"))


def make_foreign_wal(folder: Path) -> Path:
    """A -wal of another database (another schema, 300 rows), as a leftover would be."""
    folder.mkdir(parents=True, exist_ok=True)
    other = folder / "other.db"
    writer = sqlite3.connect(other)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE unrelated (x)")
    writer.executemany("INSERT INTO unrelated VALUES (?)", [(os.urandom(200),) for _ in range(300)])
    writer.commit()
    kept = folder / "foreign.db-wal"
    shutil.copyfile(f"{other}-wal", kept)
    writer.close()
    return kept
