"""No backup can be used, but the branch holds the journal: a fresh start takes the journal back
for replay (never the other way round: a journal already on disk is the better copy)."""

from __future__ import annotations

from dataclasses import dataclass, field

from conf.journal import UPDATE, JournalEntry, JournalWriter, encode, read_journal
from conf.layout import DataLayout
from watchdog.data.recovery import recover


@dataclass
class Found:
    entries: list = field(default_factory=list)
    refused: list = field(default_factory=list)


@dataclass
class Package:
    id: str
    chunks: list


@dataclass
class Fetched:
    packages: list
    refused: list = field(default_factory=list)


class BranchWithOnlyAJournal:
    def __init__(self, lines: bytes) -> None:
        self.lines = lines
        self.asked_since: list[float] = []

    def candidates(self, now: float) -> Found:
        return Found()

    def fetch_journal(self, since: float) -> Fetched:
        self.asked_since.append(since)
        return Fetched([Package("j1", [("segment-00000001.jsonl", 0, self.lines)])])


def entry(update_id: int) -> JournalEntry:
    return JournalEntry(UPDATE, update_id, 1_700_000_000.0, 5, {"update_id": update_id})


def test_a_fresh_start_brings_the_branchs_journal_back(tmp_path):
    layout = DataLayout(tmp_path, tmp_path / "erixcast.db")
    branch = BranchWithOnlyAJournal(b"".join(encode(entry(i)) for i in (1, 2, 3)))
    result = recover(layout, "the database file is missing", "", 1_800_000_000.0, branch)
    assert result.fresh and branch.asked_since == [0.0]
    assert [e.update_id for e in read_journal(layout.journal).updates] == [1, 2, 3]
    assert result.journal["updates"] == 3


def test_a_journal_on_disk_is_not_replaced_by_the_branchs(tmp_path):
    layout = DataLayout(tmp_path, tmp_path / "erixcast.db")
    writer = JournalWriter(layout.journal)
    writer.open()
    writer.append([entry(7)])
    writer.close()
    branch = BranchWithOnlyAJournal(encode(entry(1)))
    result = recover(layout, "the database file is missing", "", 1_800_000_000.0, branch)
    assert result.fresh and branch.asked_since == []
    assert [e.update_id for e in read_journal(layout.journal).updates] == [7]
