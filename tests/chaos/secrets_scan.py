"""Secrets where they must not be: every file of the campaign (logs, supervisord's output, DATA_DIR
with its backups and quarantine, the offsite cache and the server's repository — git objects
read decompressed), and what the stack serves over HTTP. Looked for: each secret as is, the
part of the bot token after its colon, and the git token as git sends it (base64 of
``x-access-token:TOKEN``). The one place a secret may sit: the admin API's ``run/admin.json``."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ALLOWED = ("run/admin.json",)
"""Paths below DATA_DIR that hold a secret by design (mode 0600)."""


@dataclass(frozen=True)
class Leak:
    secret: str
    where: str


def needles(named: dict[str, str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name, value in named.items():
        if not value:
            continue
        found[name] = value.encode()
        if name == "TELEGRAM_BOT_TOKEN" and ":" in value:
            found[f"{name} (after the colon)"] = value.split(":", 1)[1].encode()
        if name == "BACKUP_GIT_TOKEN":
            for user in ("x-access-token", "git", "oauth2"):
                encoded = base64.b64encode(f"{user}:{value}".encode())
                found[f"{name} (base64, {user})"] = encoded
    return found


def _git_objects(repo: Path) -> bytes:
    try:
        done = subprocess.run(
            ["git", "--git-dir", str(repo), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return b""
    return done.stdout


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def scan_files(
    roots: Iterable[Path], named: dict[str, str], data_dir: Path | None = None
) -> list[Leak]:
    patterns = needles(named)
    leaks: list[Leak] = []
    allowed = {str(data_dir / a) for a in ALLOWED} if data_dir else set()
    repos: set[Path] = set()
    for root in roots:
        if not root.exists():
            continue
        for path in _files(root):
            if str(path) in allowed:
                continue
            if path.name == "HEAD" and (path.parent / "objects").is_dir():
                repos.add(path.parent)
            try:
                content = path.read_bytes()
            except OSError:
                continue
            leaks += [
                Leak(name, str(path)) for name, needle in patterns.items() if needle in content
            ]
    for repo in sorted(repos):
        content = _git_objects(repo)
        leaks += [
            Leak(name, f"{repo} (git objects)")
            for name, needle in patterns.items()
            if needle in content
        ]
    return leaks


def scan_text(where: str, text: str, named: dict[str, str]) -> list[Leak]:
    content = text.encode(errors="replace")
    return [Leak(name, where) for name, needle in needles(named).items() if needle in content]
