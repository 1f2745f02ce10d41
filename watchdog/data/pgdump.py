"""Verified logical backups of a PostgreSQL database: ``pg_dump -Fc`` into the catalogue,
proven by ``pg_restore`` into a scratch database whose row counts must equal the counts taken
in the dump's own snapshot; explicit restores into an empty database; drills.

The counts and the dump read the same data: a REPEATABLE READ transaction exports its
snapshot, counts every table in it, and ``pg_dump --snapshot`` dumps from it. The password
reaches the tools through ``PGPASSWORD`` only, never their command line. A dump that does not
restore, or restores other counts, is set aside (``.failed-<id>.pgdump`` and its note) and
never counted.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conf.journal_lines import JournalEntry
from watchdog.data import erasures_pg
from watchdog.data import server as pg
from watchdog.data.catalogue import FAILED_PREFIX, Backup, Catalogue, Manifest, new_backup_id
from watchdog.data.fs import atomic_write, fsync_file, note_set_aside
from watchdog.data.snapshot import Proceed, SnapshotError, SnapshotRequest, sha256_of
from watchdog.rules import server as rules

log = logging.getLogger(__name__)

ENGINE = "postgresql"
SUFFIX = ".pgdump"
RANDOM_LINES = (b"\\restrict ", b"\\unrestrict ")
"""Lines of pg_restore's SQL that differ on every run (a random key, from 15.14 / 16.10 on)."""
POLL = 0.25
"""Seconds between looks at a running tool (to stop it when told to)."""


def is_dump(manifest: Manifest) -> bool:
    return manifest.extra.get("engine") == ENGINE


def find_tool(name: str) -> Path:
    """``pg_dump``/``pg_restore``: Debian's newest ``/usr/lib/postgresql/<v>/bin`` (what the
    tests' server runs), else the one on PATH. SnapshotError when there is none."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(re.sub(r"\D", "", path.split("/")[4]) or 0),
    )
    if found:
        return Path(found[-1])
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise SnapshotError(f"{name} is not installed (Debian: postgresql-client); no backup possible")


def dump_tool_problem(server_version_num: int) -> str | None:
    """Why this machine's ``pg_dump`` cannot back up a server of that version (None: it can):
    said once at start-up, before the first dump would fail on it."""
    try:
        tool = find_tool("pg_dump")
    except SnapshotError as error:
        return str(error)
    return rules.dump_tool_fits(tool_major(tool), server_version_num)


def tool_major(tool: Path) -> int:
    out = subprocess.run(
        [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else 0


def _run(argv: list[str], server: pg.Server, stdout: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        env=server.tool_environment(dict(os.environ)),
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(
    process: subprocess.Popen[bytes], server: pg.Server, proceed: Proceed, what: str
) -> None:
    """Wait for ``process``, stopping it if told to; SnapshotError (one scrubbed line) on failure."""
    while True:
        try:
            process.wait(POLL)
            break
        except subprocess.TimeoutExpired:
            if not proceed():
                process.kill()
                process.wait()
                raise SnapshotError(f"{what}: abandoned (deadline reached or stopping)") from None
    errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        lines = [line for line in errors.splitlines() if line.strip()]
        detail = server.scrub(lines[0] if lines else f"exit code {process.returncode}")[:300]
        raise SnapshotError(f"{what} failed: {detail}")


def run_tool(argv: list[str], server: pg.Server, proceed: Proceed, what: str) -> None:
    process = _run(argv, server)
    _finish(process, server, proceed, what)


def content_sha256(dump: Path, server: pg.Server, proceed: Proceed) -> str:
    """The sha256 of what the dump holds, as SQL (the dump file itself carries its time): two
    dumps of unchanged data give the same one, so an unchanged restart snapshot is skipped."""
    argv = [str(find_tool("pg_restore")), "--file=-", str(dump)]
    process = _run(argv, server, stdout=subprocess.PIPE)
    digest = hashlib.sha256()
    assert process.stdout is not None
    for line in process.stdout:
        if not line.startswith(RANDOM_LINES):
            digest.update(line)
    _finish(process, server, proceed, "reading the dump")
    return digest.hexdigest()


@dataclass
class Dumper:
    """Dumping and proving; the steps are attributes so a test can wrap one (a truncated dump,
    counts that differ) and watch the proof refuse it."""

    server: pg.Server

    def __post_init__(self) -> None:
        self.dump_to: Callable[[Path, str, Proceed], None] = self._dump_to
        self.restore_into: Callable[[Path, pg.Server, Proceed], None] = self._restore_into
        self.erasures: list[JournalEntry] = []
        self.erasure_rows = 0
        """The erasures table's rows in the dumped snapshot (valid or not): ``erasure_dump_due``."""
        """The erasure record as of the last dump's snapshot."""
        self.erasure_problems: list[str] = []

    def _dump_to(self, target: Path, snapshot: str, proceed: Proceed) -> None:
        tool = find_tool("pg_dump")
        argv = [str(tool), "--format=custom", f"--snapshot={snapshot}", f"--file={target}"]
        run_tool([*argv, f"--dbname={self.server.conninfo()}"], self.server, proceed, "pg_dump")

    def _restore_into(self, dump: Path, target: pg.Server, proceed: Proceed) -> None:
        tool = find_tool("pg_restore")
        argv = [
            str(tool),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={target.conninfo()}",
            str(dump),
        ]
        run_tool(argv, target, proceed, "pg_restore")

    def dump(self, target: Path, proceed: Proceed) -> tuple[dict[str, int], pg.Probe]:
        """``pg_dump -Fc`` of the live database at ``target`` (fsynced) and the row counts of
        the very snapshot it dumped; its erasures are kept in ``self.erasures``."""
        fitness = pg.probe(self.server)
        problem = rules.dump_tool_fits(tool_major(find_tool("pg_dump")), fitness.version_num)
        if problem:
            raise SnapshotError(problem)
        with pg.connect(self.server, autocommit=False) as connection:
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = connection.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            counts = pg.count_rows(connection)
            self.erasures, self.erasure_problems = erasures_pg.read_table(
                connection, self.server.where
            )
            self.erasure_rows = erasures_pg.table_rows(connection)
            self.dump_to(target, str(row[0]), proceed)  # the transaction keeps the snapshot
            connection.rollback()
        fsync_file(target)
        return counts, fitness

    def prove(self, dump: Path, counts: dict[str, int], proceed: Proceed) -> str:
        """Restore into a scratch database and count: what it holds, or SnapshotError."""
        with pg.scratch_database(self.server) as scratch:
            self.restore_into(dump, scratch, proceed)
            with pg.connect(scratch) as connection:
                restored = pg.count_rows(connection)
        differences = rules.count_differences(counts, restored)
        if differences:
            raise SnapshotError(f"restored row counts differ: {'; '.join(differences[:5])}")
        return f"restored into a scratch database: {sum(restored.values())} rows, counts equal"


def set_aside(catalogue: Catalogue, tier: str, backup_id: str, data: Path, why: str) -> Path:
    """A dump that failed its proof: kept as ``.failed-<id>.pgdump`` beside a note (only the
    newest of its tier), never counted."""
    folder = catalogue.tier_dir(tier)
    for old in folder.glob(f"{FAILED_PREFIX}*{SUFFIX}"):
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    kept = folder / f"{FAILED_PREFIX}{backup_id}{SUFFIX}"
    os.replace(data, kept)
    atomic_write(kept.with_suffix(".json"), json.dumps({"id": backup_id, "failed": why}, indent=2))
    note_set_aside(kept, f"{tier} dump", why)
    return kept


def make_dump(
    dumper: Dumper, catalogue: Catalogue, request: SnapshotRequest
) -> tuple[Manifest, Path]:
    """A proven dump (still temporary) and its manifest, as ``maker.make_snapshot`` gives
    for a file. Raises SnapshotError; a dump that failed its proof is set aside and said."""
    started = time.monotonic()
    backup_id = new_backup_id(request.tier, request.created_at, secrets.token_hex(3))
    tmp = catalogue.temporary_path(request.tier, backup_id, SUFFIX)
    try:
        try:
            counts, fitness = dumper.dump(tmp, request.proceed)
        except pg.ServerError as error:
            raise SnapshotError(str(error)) from None
        try:
            detail = dumper.prove(tmp, counts, request.proceed)
        except (SnapshotError, pg.ServerError) as error:
            if "abandoned" in str(error):
                raise
            kept = set_aside(catalogue, request.tier, backup_id, tmp, str(error))
            raise SnapshotError(
                f"dump {backup_id} not counted: {error} (set aside as {kept})"
            ) from None
        for problem in [
            *dumper.erasure_problems,
            *erasures_pg.record_in(catalogue.layout, dumper.erasures),
        ]:
            log.error("erasures: %s", problem)
        digest = sha256_of(tmp, request.proceed)
        fingerprint = content_sha256(tmp, dumper.server, request.proceed)
        size = tmp.stat().st_size
        manifest = Manifest(
            id=backup_id,
            tier=request.tier,
            reason=request.reason,
            created_at=request.created_at,
            size_bytes=size,
            sha256=digest,
            file=f"{backup_id}{SUFFIX}",
            file_size=size,
            file_sha256=digest,
            compression=None,
            rows=counts,
            sqlite_version="",
            app_version=request.app_version,
            duration_s=round(time.monotonic() - started, 3),
            extra={
                "engine": ENGINE,
                "server_version": fitness.version,
                "database": dumper.server.database,
                "content_sha256": fingerprint,
                "proof": detail,
                "erasures": str(len(dumper.erasures)),
                "erasure_rows": str(dumper.erasure_rows),
            },
        )
        return manifest, tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_dump_file(path: Path, manifest: Manifest) -> str | None:
    """None when ``path`` is the dump ``manifest`` describes (size, sha256) and reads as a
    dump (``pg_restore --list``), else why not. Needs no server."""
    if not path.exists():
        return f"data file {path.name} is missing"
    if path.stat().st_size != manifest.size_bytes or sha256_of(path) != manifest.sha256:
        return "sha256 mismatch: the dump is not what was backed up"
    listing = subprocess.run(
        [str(find_tool("pg_restore")), "--list", str(path)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if listing.returncode != 0:
        return "pg_restore cannot read it as a dump"
    return None


def restore_dump(dumper: Dumper, backup: Backup, target: pg.Server, proceed: Proceed) -> str:
    """Restore a catalogued dump into ``target``, which must be empty; its counts must then be
    the manifest's. Raises SnapshotError or ServerError (one line each)."""
    problem = check_dump_file(backup.data_path, backup.manifest)
    if problem:
        raise SnapshotError(f"backup {backup.id}: {problem}")
    pg.probe(target)
    held = pg.emptiness(target)
    if held:
        raise SnapshotError(
            f"{target.where} is not empty ({held}): a restore goes only into an empty "
            "database, never over one"
        )
    dumper.restore_into(backup.data_path, target, proceed)
    with pg.connect(target) as connection:
        restored = pg.count_rows(connection)
    differences = rules.count_differences(backup.manifest.rows, restored)
    if differences:
        raise SnapshotError(
            f"restored into {target.where}, but the counts differ: {'; '.join(differences[:5])}"
        )
    return f"backup {backup.id} restored into {target.where}: {sum(restored.values())} rows"


def drill_dump(dumper: Dumper, backup: Backup, proceed: Proceed) -> str:
    """A drill of a dump: restored into a scratch database, counts as the manifest's."""
    problem = check_dump_file(backup.data_path, backup.manifest)
    if problem:
        raise SnapshotError(problem)
    return dumper.prove(backup.data_path, backup.manifest.rows, proceed)


def dump_bytes_estimate(server: pg.Server) -> int:
    """Room a dump may need: the database's size (a compressed dump is far smaller)."""
    try:
        return pg.probe(server).size_bytes
    except pg.ServerError:
        return 0
