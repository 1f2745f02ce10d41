"""What an anonymous caller may see of the health document.

``/health`` is always anonymous (it is Render's health check, on the public URL), so it never
shows where things live: URLs (the offsite repository's, in an error text) and filesystem paths
are replaced by placeholders, path fields are dropped. When ``STATS_TOKEN`` is set the operator
has said the detail is private: row counts (how many users and messages the bot holds) go too,
and stay on ``/stats`` behind the token. The keys operators rely on stay; a hidden value is null.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

URL_PLACEHOLDER = "<url>"
PATH_PLACEHOLDER = "<path>"
COUNT_PLACEHOLDER = "<n>"

PATH_KEYS = frozenset({"path", "data_dir", "database_path", "mount_point"})
"""Fields whose value is a filesystem location: dropped from the public document."""

_URL = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]]"  # scheme://…
    r"|\b[\w.-]+@[\w.-]+:[^\s'\"<>]*[^\s'\"<>.,:;)\]]"  # scp-like git@host:owner/repo.git
)
_PATH = re.compile(
    # An absolute path (two segments at least, or one after a home): not the '/' of '3/5'.
    r"(?<![\w/.:~-])(?:~|\.{1,2})?/[\w.@%+=~-]+(?:/[\w.@%+=~-]*)+"
    r"|(?<![\w/.:~-])~/[\w.@%+=~-]+"
)
_ROWS = re.compile(r"\b\d[\d,_]*(\s+rows?)\b")


def scrub_text(
    text: str, known_paths: Iterable[str] = (), known_addresses: Iterable[str] = ()
) -> str:
    """``text`` with every URL and filesystem path replaced by a placeholder; the
    ``known_addresses`` (the offsite repository's URL, host and path, which git quotes in its
    errors in many shapes, ``Could not resolve host: …`` and ``host:path`` among them) go
    wherever they appear."""
    return scrubber(tuple(known_paths), tuple(known_addresses)).text(text)


class Scrubber:
    """:func:`scrub_text` for one set of known paths and addresses, prepared once (their
    patterns compiled) and remembering what it scrubbed: the same few texts come back at every
    request (a check's sentence, an error), and scrubbing each again with a dozen patterns was
    most of what ``/health`` and ``/`` cost a request."""

    MEMORY = 2048
    """Texts remembered before the memory starts again (a bound, not a tuning)."""

    def __init__(self, known_paths: tuple[str, ...], known_addresses: tuple[str, ...]) -> None:
        self.addresses = sorted({a for a in known_addresses if len(a) > 2}, key=len, reverse=True)
        # Known locations first, longest first: they may be relative (DATA_DIR=var/data) or hold
        # characters the pattern does not expect. A bare word (DATA_DIR=data) is left to the
        # pattern.
        self.paths = [
            re.compile(rf"(?<![\w.-]){re.escape(known)}(?:/[\w.@%+=~-]*)*")
            for known in sorted(
                {p for p in known_paths if "/" in p and p != "/"}, key=len, reverse=True
            )
        ]
        self._memory: dict[tuple[str, bool], str] = {}

    def text(self, text: str, hide_counts: bool = False) -> str:
        key = (text, hide_counts)
        done = self._memory.get(key)
        if done is None:
            done = self._scrub(text)
            if hide_counts:
                done = _ROWS.sub(COUNT_PLACEHOLDER + r"\1", done)
            if len(self._memory) >= self.MEMORY:
                self._memory.clear()
            self._memory[key] = done
        return done

    def _scrub(self, text: str) -> str:
        for known in self.addresses:
            text = text.replace(known, URL_PLACEHOLDER)
        if "/" not in text and "@" not in text:
            return text  # no URL, no path: every pattern below needs one of the two
        text = _URL.sub(URL_PLACEHOLDER, text)
        for pattern in self.paths:
            text = pattern.sub(PATH_PLACEHOLDER, text)
        return _PATH.sub(PATH_PLACEHOLDER, text)


@functools.lru_cache(maxsize=8)
def scrubber(known_paths: tuple[str, ...], known_addresses: tuple[str, ...]) -> Scrubber:
    """The scrubber of these paths and addresses (they change rarely: a new mount point)."""
    return Scrubber(known_paths, known_addresses)


def _scrub(value: Any, scrub: Scrubber, hide_counts: bool) -> Any:
    if isinstance(value, str):
        return scrub.text(value, hide_counts)
    if isinstance(value, dict):
        return {
            key: _scrub(item, scrub, hide_counts)
            for key, item in value.items()
            if key not in PATH_KEYS
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, scrub, hide_counts) for item in value]
    return value


def public_health(
    document: dict[str, Any],
    known_paths: Iterable[str] = (),
    hide_counts: bool = False,
    known_addresses: Iterable[str] = (),
) -> dict[str, Any]:
    """A copy of the /health document fit for anyone (the original is left as it was)."""
    scrub = scrubber(tuple(known_paths), tuple(known_addresses))
    public: dict[str, Any] = _scrub(document, scrub, hide_counts)
    if hide_counts:
        database = public.get("database")
        if isinstance(database, dict):
            if "records" in database:
                database["records"] = None
            database.pop("tables", None)
        last = (public.get("recovery") or {}).get("last")
        if isinstance(last, dict) and isinstance(last.get("salvage"), dict):
            # Rows read and merged per table: the tables' sizes by another name.
            last["salvage"] = {
                key: (None if key in ("read", "merged", "rejected", "withheld") else item)
                for key, item in last["salvage"].items()
            }
    return public
