"""Table b-trees, read directly: leaf cells (overflow chains followed), interior pages, a walk
from a root that checks what it reaches, the free-list, and the schema table on page 1.

Nothing read is trusted: every offset, count and page number is checked before it is used. See
:mod:`watchdog.data.pages` for the file and the records.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from typing import NamedTuple

from watchdog.data.pages import U32, PageImage, decode_record, signed, varint

TABLE_INTERIOR, TABLE_LEAF = 0x05, 0x0D
MAX_DEPTH = 20
"""SQLite's own bound on a b-tree's depth (BTCURSOR_MAX_DEPTH)."""


def _header_at(number: int) -> int:
    return 100 if number == 1 else 0


def _cell_pointers(page: bytes, number: int, usable: int, interior: bool) -> list[int] | None:
    """The cell offsets of a b-tree page, or None if its header cannot be believed."""
    head = _header_at(number)
    count = int.from_bytes(page[head + 3 : head + 5], "big")
    start = head + (12 if interior else 8)
    end = start + 2 * count
    if end > usable:
        return None
    pointers = [int.from_bytes(page[i : i + 2], "big") for i in range(start, end, 2)]
    if any(not end <= p < usable for p in pointers):
        return None
    return pointers


def _free_spans(page: bytes, number: int, usable: int) -> list[tuple[int, int]]:
    """The page's freeblocks as (start, end), as far as the chain reads (SQLite does not read
    it to read a page, so neither is a broken chain a reason to leave the page's cells)."""
    spans: list[tuple[int, int]] = []
    at = int.from_bytes(page[_header_at(number) + 1 : _header_at(number) + 3], "big")
    while at:
        if at + 4 > usable or (spans and at <= spans[-1][0]):
            break
        size = int.from_bytes(page[at + 2 : at + 4], "big")
        if size < 4 or at + size > usable:
            break
        spans.append((at, at + size))
        at = int.from_bytes(page[at : at + 2], "big")
    return spans


def interior_children(page: bytes, number: int, usable: int) -> list[tuple[int, int | None]]:
    """A table interior page's (child page, key) pairs, left to right; the right-most child's key
    is None. Empty if the page is not one or does not parse."""
    head = _header_at(number)
    if page[head] != TABLE_INTERIOR:
        return []
    pointers = _cell_pointers(page, number, usable, interior=True)
    if pointers is None:
        return []
    children: list[tuple[int, int | None]] = []
    try:
        for at in pointers:
            key, _ = varint(page, at + 4)
            children.append((U32.unpack_from(page, at)[0], signed(key)))
    except (IndexError, struct.error):
        return []
    children.append((U32.unpack_from(page, head + 8)[0], None))
    return children


class Cell(NamedTuple):
    rowid: int
    payload: bytes | None  # None: its overflow chain could not be followed
    overflow: tuple[int, ...] = ()


def leaf_cells(
    image: PageImage,
    number: int,
    page: bytes | None = None,
    avoid: frozenset[int] = frozenset(),
    limit: int | None = None,
) -> list[Cell | None] | None:
    """The cells of a table leaf page in pointer order (the first ``limit``), None for a cell
    that does not parse or overlaps a freeblock or another cell (a deleted cell's bytes are never
    read as a row); None if the page is not a table leaf. Overflow chains are followed, never
    into ``avoid``."""
    page = page if page is not None else image.page(number)
    if page is None or page[_header_at(number)] != TABLE_LEAF:
        return None
    usable = image.usable
    pointers = _cell_pointers(page, number, usable, interior=False)
    if pointers is None:
        return None
    free = _free_spans(page, number, usable)
    most_local = usable - 35
    least_local = (usable - 12) * 32 // 255 - 23
    found: list[tuple[int, int, int, int] | None] = []  # rowid, body start, local size, size
    spans: list[tuple[int, int, int]] = [(start, stop, -1) for start, stop in free]
    for index, at in enumerate(pointers[:limit]):
        try:
            size, body = varint(page, at)
            rowid, body = varint(page, body)
        except IndexError:
            found.append(None)
            continue
        local = size
        if size > most_local:
            spill = least_local + (size - least_local) % (usable - 4)
            local = spill if spill <= most_local else least_local
        stop = body + local + (4 if local < size else 0)
        found.append((rowid, body, local, size) if stop <= usable else None)
        spans.append((at, stop, index))
    for index in _overlapping(spans):
        found[index] = None
    cells: list[Cell | None] = []
    for entry in found:
        if entry is None:
            cells.append(None)
            continue
        rowid, body, local, size = entry
        if local == size:
            cells.append(Cell(signed(rowid), page[body : body + local]))
            continue
        first = U32.unpack_from(page, body + local)[0]
        rest, chain = _overflow(image, first, size - local, avoid)
        whole = page[body : body + local] + rest if rest is not None else None
        cells.append(Cell(signed(rowid), whole, chain))
    return cells


def leaf_rowids(page: bytes, number: int, usable: int) -> list[int] | None:
    """The rowids of a table leaf page's cells (those that parse), or None if it is not one: what
    a walk checks against the keys above it, without reading the rows."""
    if page[_header_at(number)] != TABLE_LEAF:
        return None
    pointers = _cell_pointers(page, number, usable, interior=False)
    if pointers is None:
        return None
    rowids = []
    for at in pointers:
        try:
            at = at + 1 if page[at] < 0x80 else varint(page, at)[1]  # the payload's size
            rowids.append(page[at] if page[at] < 0x80 else signed(varint(page, at)[0]))
        except IndexError:
            continue
    return rowids


def _overlapping(spans: list[tuple[int, int, int]]) -> set[int]:
    """The indexes (>= 0) of spans that overlap another span."""
    hit: set[int] = set()
    reach, owner = -1, -1
    for start, stop, index in sorted(spans):
        if start < reach:
            hit.update(i for i in (index, owner) if i >= 0)
        if stop > reach:
            reach, owner = stop, index
    return hit


def _overflow(
    image: PageImage, first: int, need: int, avoid: frozenset[int]
) -> tuple[bytes | None, tuple[int, ...]]:
    """``need`` bytes from the overflow chain at ``first``; None unless the chain has exactly
    that many pages and ends with a zero pointer."""
    parts, chain, number = [], [], first
    while need > 0:
        if number in avoid or number in chain or not 2 <= number <= image.page_count:
            return None, tuple(chain)
        page = image.page(number)
        if page is None:
            return None, tuple(chain)
        chain.append(number)
        piece = page[4 : image.usable][:need]
        parts.append(piece)
        need -= len(piece)
        number = U32.unpack_from(page, 0)[0]
    return (b"".join(parts) if number == 0 else None), tuple(chain)


@dataclass
class Walk:
    """What a walk of one table b-tree reached: its pages, the leaves in key order, and whether
    every page below the root was where the tree said and as the tree said (``complete``)."""

    root: int
    leaves: list[int]
    pages: set[int]
    complete: bool
    cells: int = 0  # on the leaves reached
    rowid_sum: int = 0  # of those cells: with ``cells``, what SQLite must have read too


def walk_table(image: PageImage, root: int, avoid: frozenset[int] | set[int] = frozenset()) -> Walk:
    """Walk a table b-tree from ``root``. A page is kept only if it is a table page, new to this
    walk and not in ``avoid`` (free-list pages, other trees), its keys or rowids lie in the range
    its parent gives, and every leaf sits at the same depth. A page that fails is left out with
    what is below it, and the walk is then not complete."""
    walk = Walk(root, [], set(), True)
    stack: list[tuple[int, int | None, int | None, int]] = [(root, None, None, 0)]
    leaf_depth: int | None = None
    while stack:
        number, low, high, depth = stack.pop()
        page = image.page(number) if 1 <= number <= image.page_count else None
        if page is None or number in walk.pages or number in avoid or depth > MAX_DEPTH:
            walk.complete = False
            continue
        kind = page[_header_at(number)]
        if kind == TABLE_INTERIOR:
            children = interior_children(page, number, image.usable)
            keys = [key for _, key in children[:-1]]
            bounds = [low, *keys, high]
            if not children or not _ascending(bounds):
                walk.complete = False
                continue
            walk.pages.add(number)
            for index in range(len(children) - 1, -1, -1):
                stack.append((children[index][0], bounds[index], bounds[index + 1], depth + 1))
        elif kind == TABLE_LEAF:
            rowids = leaf_rowids(page, number, image.usable)
            if (
                rowids is None
                or not _ascending([low, *rowids, high])
                or leaf_depth not in (None, depth)
            ):
                walk.complete = False
                continue
            leaf_depth = depth
            walk.pages.add(number)
            walk.leaves.append(number)
            walk.cells += len(rowids)
            walk.rowid_sum += sum(rowids)
        else:
            walk.complete = False
    return walk


def _ascending(bounds: list[int | None]) -> bool:
    """``[low, *keys, high]``: each key above the one before (``low`` the exclusive bound), the
    last at most ``high`` (inclusive: a child holds the rowids up to its parent's key). ``None``:
    no bound."""
    known = [value for value in bounds[:-1] if value is not None]
    if any(a >= b for a, b in itertools.pairwise(known)):
        return False
    return bounds[-1] is None or not known or known[-1] <= bounds[-1]


@dataclass(frozen=True)
class Freelist:
    pages: frozenset[int]  # trunk and leaf pages read
    trusted: bool  # the whole chain read, consistent, as long as the header says
    detail: str


def read_freelist(image: PageImage) -> Freelist:
    """The free-list pages (trunks and leaves) from header offsets 32 and 36."""
    header = image.header
    if not header.intact:
        return Freelist(frozenset(), False, "the header of page 1 is unreadable")
    seen: set[int] = set()
    trunk, per_trunk = header.freelist_trunk, image.usable // 4 - 2
    while trunk:
        page = image.page(trunk) if 2 <= trunk <= image.page_count else None
        if page is None or trunk in seen:
            return Freelist(frozenset(seen), False, f"trunk page {trunk} is not a trunk page")
        seen.add(trunk)
        following, count = U32.unpack_from(page, 0)[0], U32.unpack_from(page, 4)[0]
        if count > per_trunk:
            return Freelist(frozenset(seen), False, f"trunk page {trunk} lists {count} pages")
        for i in range(count):
            leaf = U32.unpack_from(page, 8 + 4 * i)[0]
            if not 2 <= leaf <= image.page_count or leaf in seen:
                return Freelist(frozenset(seen), False, f"trunk page {trunk} lists page {leaf}")
            seen.add(leaf)
        trunk = following
        if len(seen) > header.freelist_count:
            break
    if len(seen) != header.freelist_count:
        detail = f"{len(seen)} pages on the chain, the header says {header.freelist_count}"
        return Freelist(frozenset(seen), False, detail)
    return Freelist(frozenset(seen), True, f"{len(seen)} pages")


def read_master(image: PageImage) -> dict[str, tuple[str, int]]:
    """``name -> (type, rootpage)`` of the schema table (rooted at page 1), as far as it reads;
    empty when page 1 is not a table page."""
    found: dict[str, tuple[str, int]] = {}
    for number in walk_table(image, 1).leaves:
        for cell in leaf_cells(image, number) or ():
            values = decode_record(cell.payload, image.encoding) if cell and cell.payload else None
            if values is None or len(values) != 5:
                continue
            kind, name, _, root, _ = values
            if isinstance(kind, str) and isinstance(name, str) and isinstance(root, int):
                found[name] = (kind, root)
    return found


def find_freelist(image: PageImage, claimed: set[int]) -> frozenset[int]:
    """The free-list found without the header's pointer to it (page 1 damaged): pages that read
    as trunk pages (a next-trunk pointer, a count, that many distinct page numbers, all in range
    and on no tree in ``claimed``) in a chain of such pages that ends, with the leaves they list.
    A b-tree page never reads as one (its first byte is its type, making the pointer too large);
    a look-alike can only hide more pages, never show a freed one."""
    per_trunk = image.usable // 4 - 2
    last = image.page_count
    trunks: dict[int, tuple[int, tuple[int, ...]]] = {}
    for number in range(2, last + 1):
        page = image.page(number) if number not in claimed else None
        if page is None:
            continue
        following, count = U32.unpack_from(page, 0)[0], U32.unpack_from(page, 4)[0]
        if following > last or following == number or count > per_trunk:
            continue
        listed = struct.unpack_from(f">{count}I", page, 8)
        if len(set(listed)) == count and all(
            2 <= leaf <= last and leaf != number and leaf not in claimed for leaf in listed
        ):
            trunks[number] = (following, listed)
    found: set[int] = set()
    for number in trunks:
        chain, at = [], number
        while at in trunks and at not in chain:
            chain.append(at)
            at = trunks[at][0]
        if at == 0:
            for trunk in chain:
                found.add(trunk)
                found.update(trunks[trunk][1])
    return frozenset(found)
