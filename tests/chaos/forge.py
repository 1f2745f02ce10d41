"""A forged offsite package, as someone holding only the git token could push it: the bot's
schema plus a planted trigger, encrypted to the operator's public key (it is in every package),
MAC'd under a key of the attacker's own, dated now so that it is "the newest" — committed on top
of the branch in the server's bare repository. And the operator's clean-up: a commit that takes
it off the branch again. (The forgery itself: :mod:`tests.forgery`.)"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from pyrage import x25519

from tests.fakes.git_server import git_env
from tests.forgery import hostile_database, package_files
from watchdog.data.catalogue import new_backup_id
from watchdog.offsite.auth import MacKey


def run_git(repo: Path, *args: str, data: bytes | None = None) -> str:
    env = {
        **git_env(repo.parent),
        "GIT_AUTHOR_NAME": "x",
        "GIT_AUTHOR_EMAIL": "x@x",
        "GIT_COMMITTER_NAME": "x",
        "GIT_COMMITTER_EMAIL": "x@x",
    }
    done = subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=data,
        check=True,
        capture_output=True,
        timeout=30,
        env=env,
    )
    return done.stdout.decode().strip()


def tip(repo: Path, branch: str) -> str:
    try:
        return run_git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch}")
    except subprocess.CalledProcessError:
        return ""


def on_branch(repo: Path, branch: str) -> set[str]:
    """The top-level folders (package ids) on the branch."""
    head = tip(repo, branch)
    if not head:
        return set()
    names = run_git(repo, "ls-tree", "--name-only", head).splitlines()
    return {name for name in names if name != "index.json"}


def forged_files(age_key: str, genuine_manifest: dict, created_at: float) -> tuple[str, dict]:
    """A forged package's id and files."""
    recipient = x25519.Identity.from_str(age_key).to_public()
    backup_id = new_backup_id("daily", created_at, "forged" + os.urandom(2).hex())
    manifest = dict(genuine_manifest)
    manifest.pop("created_iso", None)
    with tempfile.TemporaryDirectory(prefix="chaos-forge-") as scratch:
        folder = Path(scratch)
        source = hostile_database(folder / "hostile.db")
        parts_folder = folder / "parts"
        parts_folder.mkdir()
        files, _ = package_files(
            source, manifest, recipient, MacKey(os.urandom(32)), parts_folder, backup_id, created_at
        )
    return backup_id, files


def plant(repo: Path, branch: str, backup_id: str, files: dict[str, bytes]) -> str:
    """Commit folder ``backup_id`` on top of the branch, listed in its index; the new tip."""
    head = tip(repo, branch)
    if not head:
        raise RuntimeError(f"no branch {branch} to plant on")
    index = json.loads(run_git(repo, "cat-file", "blob", f"{head}:index.json"))
    for entry in index["entries"]:
        entry["commit"] = entry["commit"] or head
    lines = [
        line
        for line in run_git(repo, "ls-tree", head).splitlines()
        if line.split("\t")[1] not in ("index.json", backup_id)
    ]
    folder = run_git(
        repo,
        "mktree",
        data="".join(
            f"100644 blob {run_git(repo, 'hash-object', '-w', '--stdin', data=content)}\t{name}\n"
            for name, content in files.items()
        ).encode(),
    )
    index["entries"] = [e for e in index["entries"] if e["id"] != backup_id]
    index["entries"].append({"id": backup_id, "commit": None, "tree": folder})
    return _commit(repo, branch, head, index, lines, extra=f"040000 tree {folder}\t{backup_id}")


def remove(repo: Path, branch: str, backup_id: str) -> str | None:
    """The operator takes a package off the branch (a new commit); None if it was not there."""
    head = tip(repo, branch)
    if not head or backup_id not in on_branch(repo, branch):
        return None
    index = json.loads(run_git(repo, "cat-file", "blob", f"{head}:index.json"))
    for entry in index["entries"]:
        entry["commit"] = entry["commit"] or head
    index["entries"] = [e for e in index["entries"] if e["id"] != backup_id]
    lines = [
        line
        for line in run_git(repo, "ls-tree", head).splitlines()
        if line.split("\t")[1] not in ("index.json", backup_id)
    ]
    return _commit(repo, branch, head, index, lines)


def _commit(
    repo: Path, branch: str, head: str, index: dict, lines: list[str], extra: str | None = None
) -> str:
    index_blob = run_git(repo, "hash-object", "-w", "--stdin", data=json.dumps(index).encode())
    lines = [*lines, f"100644 blob {index_blob}\tindex.json"]
    if extra:
        lines.append(extra)
    root = run_git(repo, "mktree", data=("\n".join(lines) + "\n").encode())
    commit = run_git(repo, "commit-tree", root, "-p", head, "-m", "chaos: by hand")
    run_git(repo, "update-ref", f"refs/heads/{branch}", commit)
    return commit
