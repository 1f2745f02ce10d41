"""The one way offsite runs git: a subprocess per call, for the network and for plumbing alike.

The token is handed to git as ``http.<url>.extraheader`` through ``GIT_CONFIG_COUNT`` /
``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n``: it is never part of a URL, a command line, a
config file or a log line, and git only sends it to the URL it was configured for. Each git
runs in its own process group so that a timeout kills it together with its helpers
(``git-remote-http``), which would otherwise hold the pipes open and hang the caller.

Why not GitPython (a dependency of the project) here: its ``kill_after_timeout`` kills the
process and the children ``pgrep -P`` finds at that instant, not a process group; it starts
git from a copy of ``os.environ``, so an inherited ``GIT_TRACE_CURL`` or ``GIT_CONFIG_*`` would
reach git (and put the token in a trace); its object database keeps ``git cat-file --batch``
processes that no timeout bounds; and its errors carry the command and stderr unscrubbed.
Undoing all of that would be this module again, so every git call, local or network, goes
through :class:`GitRunner`, and a bare repository is driven with plumbing (:class:`BareRepo`).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from watchdog.offsite.errors import OffsiteError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
PASSED_THROUGH = (
    "PATH",
    "HOME",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSH_COMMAND",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
)
"""What git may see of our own environment; in particular no ``GIT_TRACE*`` or ``GIT_CONFIG*``."""

COMMITTER = {
    "GIT_AUTHOR_NAME": "ErixCast offsite",
    "GIT_AUTHOR_EMAIL": "offsite@erixcast.invalid",
    "GIT_COMMITTER_NAME": "ErixCast offsite",
    "GIT_COMMITTER_EMAIL": "offsite@erixcast.invalid",
}

_AUTH_SIGNS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "invalid username or password",
    "invalid credentials",
    "error: 401",
    "error: 403",
    " 401 ",
    " 403 ",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
    "permission denied",
    "permission to ",
    "write access to repository not granted",
)
_UNREACHABLE_SIGNS = (
    "could not resolve host",
    "connection refused",
    "failed to connect",
    "couldn't connect",
    "network is unreachable",
    "no route to host",
    "connection timed out",
    "operation timed out",
    "empty reply from server",
    "connection reset",
    "recv failure",
    "ssl",
    "tls",
    "gnutls",
    "unable to access",
)
_NOT_FOUND_SIGNS = (
    "repository not found",
    "does not appear to be a git repository",
    "not found",
    "error: 404",
    "no such file or directory",
)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace").strip()


def check_url(url: str, has_token: bool) -> None:
    """Refuse URLs that would leak: credentials inside them, or a token sent over plain http."""
    if not url or not url.strip():
        raise OffsiteError("BACKUP_GIT_URL is empty", "config")
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        if parts.username is not None or parts.password is not None:
            raise OffsiteError(
                "BACKUP_GIT_URL must not contain credentials; put the token in BACKUP_GIT_TOKEN",
                "config",
            )
        if parts.scheme == "http" and has_token and parts.hostname not in LOOPBACK_HOSTS:
            raise OffsiteError(
                "BACKUP_GIT_URL uses plain http: the token would travel in clear; use https",
                "config",
            )


def check_branch(branch: str) -> None:
    """Refuse a name git would refuse as a branch, or one that reaches outside ``refs/heads/``."""
    bad = (
        not branch
        or branch.startswith(("-", "/", "refs/"))
        or any(char.isspace() or char in "~^:?*[\\" for char in branch)
        or ".." in branch
        or branch.endswith((".lock", "/", "."))
    )
    if bad:
        raise OffsiteError(f"BACKUP_GIT_BRANCH {branch!r} is not a valid branch name", "config")


def auth_header(token: str) -> str:
    credentials = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"Authorization: Basic {credentials}"


class GitRunner:
    """Runs git commands; ``network=True`` ones get the token and the network timeout."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        timeout: float,
        local_timeout: float,
        secrets: Sequence[str] = (),
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.local_timeout = local_timeout
        scheme = urlsplit(url).scheme
        self._header = auth_header(token) if token and scheme in ("http", "https") else None
        hidden = [value for value in (token, *secrets) if value]
        if self._header:
            hidden += [self._header, self._header.split(" ", 2)[2]]
        self._hidden = sorted(set(hidden), key=len, reverse=True)

    # -- environment -------------------------------------------------------------------------

    def environment(self, network: bool) -> dict[str, str]:
        env = {key: os.environ[key] for key in PASSED_THROUGH if key in os.environ}
        env.setdefault("PATH", os.defpath)
        env.update(COMMITTER)
        env.update(
            LANG="C",
            LC_ALL="C",
            GIT_TERMINAL_PROMPT="0",
            GIT_ASKPASS="",
            SSH_ASKPASS="",
            GIT_CONFIG_GLOBAL=os.devnull,
        )
        config = [("credential.helper", ""), ("core.askPass", "")]
        if network and self._header:
            config.append((f"http.{self.url}.extraheader", self._header))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        return env

    # -- scrubbing and errors ----------------------------------------------------------------

    def scrub(self, text: str) -> str:
        for secret in self._hidden:
            text = text.replace(secret, "[redacted]")
        text = re.sub(r"(?i)authorization:[^\r\n]*", "Authorization: [redacted]", text)
        text = re.sub(r"AGE-SECRET-KEY-1[0-9A-Za-z]+", "[redacted age key]", text)
        return re.sub(r"(://)[^/@\s]+@", r"\1[redacted]@", text)

    def failure(self, what: str, result: Result, network: bool = True) -> OffsiteError:
        detail = self.scrub(result.stderr).strip()
        lines = [line.strip() for line in detail.splitlines() if line.strip()]
        tail = " | ".join(lines[-3:])[-400:]
        lowered = detail.lower()
        if not network:
            kind, reason = "git", f"git exited with status {result.returncode}"
        elif any(sign in lowered for sign in _AUTH_SIGNS):
            kind, reason = "auth", "the git server refused the credentials (check BACKUP_GIT_TOKEN)"
        elif any(sign in lowered for sign in _UNREACHABLE_SIGNS):
            kind, reason = "unreachable", "the git server cannot be reached"
        elif any(sign in lowered for sign in _NOT_FOUND_SIGNS):
            kind, reason = "not_found", "the backup repository was not found"
        else:
            kind, reason = "git", f"git exited with status {result.returncode}"
        message = f"{what}: {reason}"
        if tail:
            message += f" ({tail})"
        return OffsiteError(message, kind)

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        *,
        what: str,
        git_dir: Path | None = None,
        network: bool = False,
        input: bytes | None = None,
        stdout_path: Path | None = None,
        check: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> Result:
        """Run ``git [--git-dir DIR] args``; raise OffsiteError on failure (if ``check``) or timeout."""
        command = ["git"]
        if git_dir is not None:
            command += ["--git-dir", str(git_dir)]
        command += list(args)
        env = self.environment(network)
        if extra_env:
            env.update(extra_env)
        limit = self.timeout if network else self.local_timeout
        out_handle = stdout_path.open("wb") if stdout_path is not None else None
        try:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                    stdout=out_handle if out_handle is not None else subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                )
            except OSError as error:
                raise OffsiteError(f"{what}: cannot run git ({error.strerror})", "git") from None
            try:
                stdout, stderr = process.communicate(input, timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                raise OffsiteError(
                    f"{what}: timed out after {limit:g} s (git was stopped)", "timeout"
                ) from None
            except BaseException:
                _kill_group(process)
                raise
        finally:
            if out_handle is not None:
                out_handle.close()
        result = Result(
            process.returncode, stdout or b"", (stderr or b"").decode("utf-8", "replace")
        )
        if check and result.returncode != 0:
            raise self.failure(what, result, network)
        return result


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.communicate(timeout=5)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        process.kill()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


@dataclass(frozen=True)
class Remote:
    """The backup branch on the server, and the runner that reaches it."""

    git: GitRunner
    branch: str

    @property
    def url(self) -> str:
        return self.git.url

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"


@dataclass(frozen=True)
class BareRepo:
    """A local bare repository (the cache, or a temporary one for a restore), plumbing only."""

    git: GitRunner
    path: Path

    def run(self, args: Sequence[str], *, what: str, **options: Any) -> Result:
        return self.git.run(args, what=what, git_dir=self.path, **options)

    def is_valid(self) -> bool:
        """git itself accepts the folder as a repository (HEAD, objects, refs)."""
        return (
            self.run(["rev-parse", "--git-dir"], what="offsite cache", check=False).returncode == 0
        )

    def rev_parse(self, ref: str) -> str:
        return self.run(["rev-parse", "--verify", ref], what="offsite ref").text

    def has_object(self, sha: str) -> bool:
        if not sha:
            return False
        return self.run(["cat-file", "-e", sha], what="offsite object", check=False).returncode == 0

    def blob(self, spec: str) -> bytes | None:
        """The blob ``spec`` names (a sha or ``<commit>:<path>``), or None if there is none."""
        result = self.run(["cat-file", "blob", spec], what="offsite object", check=False)
        return result.stdout if result.returncode == 0 else None

    def blob_size(self, spec: str) -> int | None:
        """The size of the blob ``spec`` names, or None if it is not a blob (read nothing)."""
        kind = self.run(["cat-file", "-t", spec], what="offsite object", check=False)
        if kind.returncode != 0 or kind.text != "blob":
            return None
        result = self.run(["cat-file", "-s", spec], what="offsite object", check=False)
        return int(result.text) if result.returncode == 0 and result.text.isdigit() else None

    def entries_under(self, tree: str) -> dict[str, tuple[str, int]] | None:
        """Name → (sha, size) of the blobs directly in ``tree`` (a sha or ``<commit>:<folder>``),
        or None if there is no such tree. Sizes come from git, before any blob is read."""
        result = self.run(["ls-tree", "-l", "-z", tree], what="offsite tree", check=False)
        if result.returncode != 0:
            return None
        found = {}
        for record in result.stdout.decode("utf-8", "surrogateescape").split("\0"):
            meta, _, name = record.partition("\t")
            fields = meta.split()
            if len(fields) == 4 and fields[1] == "blob" and fields[3].isdigit():
                found[name] = (fields[2], int(fields[3]))
        return found

    def hash_file(self, path: Path) -> str:
        return self.run(
            ["hash-object", "-w", "--no-filters", str(path)], what="storing a part"
        ).text

    def hash_bytes(self, data: bytes) -> str:
        return self.run(
            ["hash-object", "-w", "--no-filters", "--stdin"], what="storing metadata", input=data
        ).text

    def mktree(self, lines: Sequence[str]) -> str:
        return self.run(
            ["mktree"], what="offsite tree", input=("\n".join(lines) + "\n").encode()
        ).text
