"""Reading journal packages back from the branch, for a restore: every one that authenticates
and holds updates a backup may lack, unpacked and checked against its manifest's sha256 and
size. The lines inside are still decoded one by one by whoever writes them
(``watchdog.data.journal``): nothing fetched is trusted further than its proof."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from watchdog.offsite.cache import scratch
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.fetch import FETCH_REF, _branch, fetch, fetch_branch
from watchdog.offsite.git import BareRepo, Remote
from watchdog.offsite.index import IndexEntry, RefusedPackage
from watchdog.offsite.journal_format import OpenedJournal, journal_entries, open_journal
from watchdog.offsite.package import unpack
from watchdog.offsite.verify import Keys, Refusal
from watchdog.rules.journal import packages_since

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedPackage:
    id: str
    created_at: float
    chunks: tuple[tuple[str, int, bytes], ...]
    """(file name, offset in it, its bytes), in the order they were written."""


@dataclass(frozen=True)
class JournalFetch:
    packages: tuple[FetchedPackage, ...]
    """Oldest first."""
    refused: tuple[str, ...]
    """One line per package not used, with its id and why."""


def scan_journals(
    repo: BareRepo, tip: str, chain: list[IndexEntry], keys: Keys
) -> tuple[list[OpenedJournal], list[RefusedPackage]]:
    """Every journal package the tip lists, authenticated, or refused with its reason."""
    opened, refused = [], []
    for index in journal_entries(chain):
        try:
            opened.append(open_journal(repo, f"{tip}:{index.id}", index, keys))
        except Refusal as refusal:
            refused.append(RefusedPackage(index.id, index.commit, refusal.kind, refusal.reason))
            log.warning(
                "offsite: journal package %s refused (%s): %s", index.id, refusal.kind, refusal
            )
        except (OffsiteError, OSError):
            raise
        except Exception as error:  # input we did not foresee: refused, never a crash
            reason = f"cannot be read ({type(error).__name__})"
            refused.append(RefusedPackage(index.id, index.commit, "corrupt", reason))
    return opened, refused


def fetch_journal(remote: Remote, work_dir: Path, keys: Keys, since: float) -> JournalFetch:
    """The journal packages holding updates a backup begun at ``since`` may lack (and the
    newest one, for its erasure records), oldest first. Raises OffsiteError for the branch
    itself; a package that fails its proof is refused and named, and the others still come."""
    if keys.mac is None or keys.identity is None:
        raise OffsiteError("BACKUP_AGE_KEY is needed to authenticate journal packages", "key")
    with _branch(remote, work_dir) as (repo, tip, chain):
        if tip is None:
            return JournalFetch((), ())
        opened, refused = scan_journals(repo, tip, chain, keys)
        wanted = {p.id for p in packages_since([o.summary for o in opened], since)}
        chosen = sorted(
            (o for o in opened if o.index.id in wanted),
            key=lambda o: (o.manifest.created_at, o.index.id),
        )
        _reach(remote, repo, chain, [o.index for o in chosen])
        taken = []
        reasons = [f"journal package {r.id}: {r.reason}" for r in refused]
        for first in chosen:
            try:
                taken.append(_take(repo, first, keys))
            except (Refusal, OffsiteError) as error:
                reasons.append(f"journal package {first.index.id}: {error}")
                log.error("offsite: %s", reasons[-1])
        return JournalFetch(tuple(taken), tuple(reasons))


def _reach(
    remote: Remote, repo: BareRepo, chain: list[IndexEntry], wanted: list[IndexEntry]
) -> None:
    """Every wanted package's own commit (where its parts are) in ``repo``: the branch
    deepened once down to the oldest, then any still missing by its hash."""
    missing = [entry for entry in wanted if not repo.has_object(entry.commit)]
    if not missing:
        return
    ids = [item.id for item in chain]
    depth = len(chain) - min(ids.index(entry.id) for entry in missing)
    fetch_branch(remote, repo, FETCH_REF, depth=depth, what="fetching the journal packages")
    for entry in missing:
        if not repo.has_object(entry.commit):
            fetch(remote, repo, entry.commit, depth=1, what="fetching a journal package")


def _take(repo: BareRepo, first: OpenedJournal, keys: Keys) -> FetchedPackage:
    index = first.index
    if not repo.has_object(index.commit):
        raise OffsiteError("it is no longer on the branch", "not_found")
    opened = open_journal(repo, f"{index.commit}:{index.id}", index, keys)
    manifest, package = opened.manifest, opened.package
    if manifest != first.manifest:
        raise Refusal("corrupt", "its own commit holds another package")
    with scratch(repo.path.parent, "journal-parts-") as folder:
        paths = []
        for part in package.parts:
            found = opened.listing.get(part.name)
            if found is None or found[1] != part.size:
                raise Refusal("corrupt", f"part {part.name} is missing or not of its size")
            path = folder / part.name
            repo.run(["cat-file", "blob", found[0]], what="reading a part", stdout_path=path)
            paths.append(path)
        payload = folder / "payload"
        unpack(index.id, package, paths, keys.identity, payload, size_limit=manifest.size_bytes)
        data = payload.read_bytes()
    if len(data) != manifest.size_bytes or hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise Refusal("corrupt", "its lines do not match the manifest's sha256")
    chunks, position = [], 0
    for chunk in manifest.chunks:
        chunks.append((chunk.file, chunk.offset, data[position : position + chunk.bytes]))
        position += chunk.bytes
    return FetchedPackage(index.id, manifest.created_at, tuple(chunks))
