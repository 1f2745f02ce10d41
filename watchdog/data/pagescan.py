"""Salvage without the schema: a damaged file's rows found page by page, each given to the one
table its shape and its place say it belongs to.

When SQLite cannot read a table (page 1, where the schema lives, is damaged; the table's root
page is gone), its rows still sit on intact table-leaf pages. This reads them with
:mod:`watchdog.data.pages`, in two ways:

* **From the tree.** The table's b-tree is walked from its root page: the root the damaged
  file's own schema names, else the restored backup's (a backup is a page-for-page copy of the
  same schema, so a table's root page has the same number in both). Rows on the leaves it
  reaches are the table's, now.
* **Orphans.** When a walk is not complete (a damaged root or interior page), every other
  table-leaf page is read and given to a table by its rows' shape (:func:`attribute`): column
  count, NULL for the rowid alias, the type each column's affinity stores, NOT NULL. A page
  whose rows fit two tables is settled only by the restored backup's page map (``dbstat``)
  *and* a row the backup holds unchanged (:func:`_tie`); otherwise, and when its rows point to
  two different tables, it is left out (``ambiguous``): a row never goes into a table it may
  not belong to.

Deleted rows must stay deleted (an erased user must not come back). A page freed by a DELETE
keeps its old rows (unless ``secure_delete`` is on, which the bot does not set; Debian's build
happens to default to it), and so, until a checkpoint, does the main file under its ``-wal``.
So: pages are read as SQLite would see them (the ``-wal``'s committed frames applied); cells are
taken only from a page's cell pointer array (a deleted cell's bytes, in a freeblock, are never
read); free-list pages (trunks and leaves, from header offsets 32 and 36) are never read; an
unreachable page of a table whose walk *is* complete is a stale copy and is skipped; and an
orphan page that shares a rowid with another page is a stale copy too (``salvage``).

When the free-list cannot be read (page 1's header is damaged), freed pages are looked for by
their trunk pages (:func:`btree.find_freelist`), but the free-list is then not known to be
whole, and a freed page whose trunk is lost looks like an orphan: orphan rows are then marked
``unguarded``. That needs the header *and* a root (or interior) page damaged. Unguarded rows
are kept apart in the salvage file and merged only when anchored by a row from a trusted source
(``merge.ANCHORS``): an erasure deletes the user's rows everywhere at once, so an old copy
finds no anchor outside the old copies themselves. What is left: with the header damaged too, a
bit flip in a child pointer that leads into a freed page whose rowids fit the pointer's range
would be read as part of the tree.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from conf.schema import schema_sql
from watchdog.data import btree, pages
from watchdog.data.database import connect
from watchdog.data.shapes import Shape, quote, shapes_of

TREE, ORPHAN, UNGUARDED = "tree", "orphan", "unguarded"
SAMPLE = 8
"""Cells decoded to tell which table an orphan page is before all of it is decoded."""


@dataclass
class Reference:
    """What the restored backup says about the damaged file: the tables' shapes, their root
    pages, which table each leaf page belonged to and the rows it held (when it was taken)."""

    shapes: dict[str, Shape]
    roots: dict[str, int] = field(default_factory=dict)
    page_size: int | None = None
    owners: Callable[[], dict[int, str]] = dict
    had_row: Callable[[str, tuple[object, ...]], bool] = lambda table, row: False


def reference(restored: Path | None) -> Reference:
    """From the restored backup, or, with none, from the bot's schema file (shapes only)."""
    if restored is None:
        with closing(connect(Path(":memory:"), "rwc")) as connection:
            connection.executescript(schema_sql())
            return Reference(shapes_of(connection))
    with closing(connect(restored, "ro")) as connection:
        shapes = shapes_of(connection)
        roots = {
            str(name): int(root)
            for name, root in connection.execute(
                "SELECT name, rootpage FROM sqlite_master WHERE type = 'table' AND rootpage > 0"
            )
        }
        page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])

    def had_row(table: str, row: tuple[object, ...]) -> bool:
        with closing(connect(restored, "ro")) as connection:
            query = f"SELECT rowid, * FROM {quote(table)} WHERE rowid = ?"
            return tuple(connection.execute(query, (row[0],)).fetchone() or ()) == row

    owners = functools.cache(lambda: page_owners(restored, roots, set(shapes)))
    return Reference(shapes, roots, page_size, owners, had_row)


def page_owners(path: Path, roots: dict[str, int], tables: set[str]) -> dict[int, str]:
    """``leaf page -> table`` of a healthy database: from the ``dbstat`` virtual table when this
    SQLite has it, else by walking each table's b-tree."""
    try:
        with closing(connect(path, "ro")) as connection:
            rows = connection.execute(
                "SELECT pageno, name FROM dbstat WHERE pagetype = 'leaf'"
            ).fetchall()
        return {int(page): str(name) for page, name in rows if name in tables}
    except sqlite3.DatabaseError:  # no dbstat in this build (or not allowed)
        wal = Path(f"{path}-wal")
        with pages.PageImage(path, wal if wal.exists() else None) as image:
            return {
                leaf: name
                for name, root in {"sqlite_schema": 1, **roots}.items()
                if name in tables
                for leaf in btree.walk_table(image, root).leaves
            }


@dataclass
class PageScan:
    """What the page scan saw (page counts only: row counts are the report's)."""

    view: str = "main file"
    targets: list[str] = field(default_factory=list)  # the tables read page by page
    freelist: str = ""
    freelist_read: bool = False  # so every live leaf of a target was found (tree or orphan)
    roots: dict[str, str] = field(default_factory=dict)  # table -> where its walk started
    complete: dict[str, bool] = field(default_factory=dict)
    leaves: int = 0  # leaf pages whose rows were taken
    stale: int = 0  # unreachable pages of a table whose tree is whole: old copies, skipped
    freed: int = 0  # free-list pages, never read
    ambiguous: int = 0  # pages that fit two tables (or none the backup's map could settle)
    unplaced_cells: int = 0  # cells that did not parse or fit no table

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


Sink = Callable[[str, int, str, tuple[object, ...]], None]
"""Receives ``(table, page, origin, (rowid, *columns))`` for every row found."""


def scan(
    image: pages.PageImage,
    ref: Reference,
    tables: Sequence[str],
    sink: Sink,
    sqlite_read: dict[str, tuple[int, int] | None],
) -> PageScan:
    """Walk every table of ``tables`` (a rowid-only pass, cheap); a table SQLite read without
    trouble, whose walk is complete and reaches as many rows with the same rowids' sum as SQLite
    read (``sqlite_read``), is done. Any other is a *target*: its rows are found page by page
    and given to ``sink``. (A damaged child pointer can lead SQLite, silently, into a freed page:
    the walk sees that page is on the free-list.)"""
    result = PageScan(view="main file and -wal" if image.with_wal else "main file")
    free = btree.read_freelist(image)
    result.freelist = ("read: " if free.trusted else "UNREADABLE: ") + free.detail
    result.freelist_read = free.trusted
    result.freed = len(free.pages)
    master = btree.read_master(image)
    claimed: set[int] = set(free.pages)
    walks: dict[str, btree.Walk] = {}
    targets: list[str] = []
    for table in tables:
        shape = ref.shapes.get(table)
        if shape is None:
            continue
        walk, where = _best_walk(image, shape, master, ref.roots, claimed)
        result.roots[table] = where
        result.complete[table] = walk is not None and walk.complete
        if walk is not None:
            walks[table] = walk
            claimed |= walk.pages
        read = sqlite_read.get(table)
        if walk is None or not walk.complete or read != (walk.cells, walk.rowid_sum):
            targets.append(table)
    result.targets = targets
    for table in targets:
        for number in walks[table].leaves if table in walks else ():
            cells = btree.leaf_cells(image, number, avoid=free.pages) or []
            rows = _rows(ref.shapes[table], _decoded(image, cells))
            result.unplaced_cells += len(cells) - len(rows)
            result.leaves += 1
            for row in rows:
                sink(table, number, TREE, row)
    open_tables = {t for t in targets if t in ref.shapes and not result.complete.get(t)}
    if open_tables:
        origin = ORPHAN if free.trusted else UNGUARDED
        if not free.trusted:
            found = btree.find_freelist(image, claimed) - claimed
            result.freelist += f"; {len(found)} more pages found by their trunk pages"
            result.freed += len(found)
            claimed |= found
        _orphans(image, ref, set(targets), open_tables, claimed, origin, sink, result)
    return result


def _best_walk(
    image: pages.PageImage,
    shape: Shape,
    master: dict[str, tuple[str, int]],
    backup_roots: dict[str, int],
    claimed: set[int],
) -> tuple[btree.Walk | None, str]:
    """The walk from the damaged file's own root for the table, else from the backup's; a walk
    counts only if its rows fit the table (a wrong root leads into another table)."""
    candidates = []
    if shape.table in master and master[shape.table][0] == "table":
        candidates.append((master[shape.table][1], "damaged file"))
    if shape.table in backup_roots:
        candidates.append((backup_roots[shape.table], "backup"))
    best: tuple[btree.Walk | None, str] = (None, "unreadable")
    for root, source in candidates:
        if root < 2 or root in claimed:
            continue
        walk = btree.walk_table(image, root, claimed)
        if not walk.leaves or not _tree_fits(image, shape, walk):
            continue
        if best[0] is None or (walk.complete, len(walk.leaves)) > (
            best[0].complete,
            len(best[0].leaves),
        ):
            best = (walk, f"{source} root page {root}")
        if walk.complete:
            break
    return best


def _tree_fits(image: pages.PageImage, shape: Shape, walk: btree.Walk) -> bool:
    """The first leaf with rows holds rows of this table (an empty tree fits any table)."""
    for number in walk.leaves:
        cells = [c for c in btree.leaf_cells(image, number) or [] if c and c.payload]
        if cells:
            decoded = _decoded(image, cells[:SAMPLE])
            return sum(1 for _, v in decoded if shape.fits(v)) * 2 > len(cells[:SAMPLE])
    return True


def _rows(
    shape: Shape, decoded: Iterable[tuple[int, tuple[object, ...]]]
) -> list[tuple[object, ...]]:
    """The rows of ``shape`` among the decoded cells, rowids strictly increasing as on a leaf."""
    rows: list[tuple[object, ...]] = []
    last: int | None = None
    for rowid, values in decoded:
        if (last is None or rowid > last) and shape.fits(values):
            rows.append(shape.row(rowid, values))
            last = rowid
    return rows


def attribute(
    decoded: Sequence[tuple[object, ...]],
    shapes: dict[str, Shape],
    tie: Callable[[set[str]], str | None],
    wanted: Iterable[str] | None = None,
) -> str | None:
    """The one table these records (one page's) belong to, or None.

    Every record has the set of tables it fits. If some table fits them all and it is the only
    one, it is the page's; if several do, ``tie`` may settle it (see :func:`_tie`). If none fits
    them all, the page is no table's: damaged cells fit nothing and are ignored, but a record
    that fits only another table contradicts the rest. When none of the tables that fit them all
    is ``wanted``, which of them it is does not matter.
    """
    by_width: dict[int, list[Shape]] = {}
    for shape in shapes.values():
        by_width.setdefault(len(shape.columns), []).append(shape)
    fitting = ({sh.table for sh in by_width.get(len(v), ()) if sh.fits(v)} for v in decoded)
    sets = [found for found in fitting if found]
    if not sets:
        return None
    common = set.intersection(*sets)
    if len(common) == 1:
        return common.pop()
    if common and wanted is not None and not common & set(wanted):
        return min(common)
    return tie(common) if common else None


def _tie(
    ref: Reference, number: int, decoded: Sequence[tuple[int, tuple[object, ...]]], common: set[str]
) -> str | None:
    """A page whose rows fit several tables is the table the backup's page map names for its
    number, if that is one of them and the page still holds a row that table had, unchanged
    (same rowid, same values): a map alone would be wrong for a page freed and reused by
    another table since the backup, and pages allocated since are on no map."""
    owner = ref.owners().get(number)
    if owner not in common:
        return None
    shape = ref.shapes[owner]
    rows = (shape.row(rowid, values) for rowid, values in decoded[:SAMPLE])
    return owner if any(ref.had_row(owner, row) for row in rows) else None


def _orphans(
    image: pages.PageImage,
    ref: Reference,
    targets: set[str],
    open_tables: set[str],
    claimed: set[int],
    origin: str,
    sink: Sink,
    result: PageScan,
) -> None:
    """Every table-leaf page no walk reached: given to a table by shape, kept for the tables
    whose walk is incomplete, counted as stale for the others among ``targets``. A few cells
    tell which table a page is; only the pages of an incomplete table are decoded whole."""
    avoid = frozenset(claimed)
    for number in range(2, image.page_count + 1):
        if number in claimed:
            continue
        page = image.page(number)
        if page is None or page[0] != btree.TABLE_LEAF:
            continue
        sample = _decoded(image, btree.leaf_cells(image, number, page, avoid, limit=SAMPLE))
        tie = functools.partial(_tie, ref, number, sample)
        table = attribute([v for _, v in sample], ref.shapes, tie, open_tables)
        decoded, cells = sample, 0
        if table in open_tables:
            every = btree.leaf_cells(image, number, page, avoid) or []
            decoded, cells = _decoded(image, every), len(every)
            table = attribute([v for _, v in decoded], ref.shapes, tie, open_tables)
        if table is None:
            result.ambiguous += 1 if decoded else 0
            continue
        if table not in open_tables:
            result.stale += 1 if table in targets else 0
            continue
        rows = _rows(ref.shapes[table], decoded)
        result.unplaced_cells += cells - len(rows)
        result.leaves += 1
        for row in rows:
            sink(table, number, origin, row)


def _decoded(
    image: pages.PageImage, cells: Iterable[btree.Cell | None] | None
) -> list[tuple[int, tuple[object, ...]]]:
    """``(rowid, values)`` of the cells whose record parses."""
    found = []
    for cell in cells or ():
        if cell is not None and cell.payload is not None:
            values = pages.decode_record(cell.payload, image.encoding)
            if values is not None:
                found.append((cell.rowid, values))
    return found
