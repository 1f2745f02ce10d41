"""Where settings come from, and the few a terminal command needs, without the parsers.

The raw side of the one settings reader (``conf.settings`` validates every setting on top of
it): the process environment first, then the env file (``ENV_FILE``, else ``./.env``), names
case-insensitive, an empty value meaning unset. A command that only has to find the running
watchdog reads DATA_DIR and DATABASE_PATH here (:func:`read_places`), with the same defaults and
the same checks as the full settings.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import NoReturn

from conf.exitcodes import EXIT_BAD_SETTINGS

DEFAULT_DATA_DIR = Path("data")
DATABASE_FILE = "erixcast.db"
"""The database's name in DATA_DIR when DATABASE_PATH is unset."""


class SettingsError(Exception):
    """A setting that cannot be used; the message names the variable and never shows a secret."""


def env_file_path() -> Path | None:
    """The env file to read: ``ENV_FILE`` (which must exist), else ``./.env`` if there is one.
    Raises SettingsError for a file that is missing or not UTF-8 text."""
    found = _env_file()
    return None if found is None else found[0]


def _env_file() -> tuple[Path, str] | None:
    named = os.environ.get("ENV_FILE")
    path = Path(named) if named else Path(".env")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if named:
            raise SettingsError(f"ENV_FILE: {path} does not exist") from None
        return None
    except IsADirectoryError:
        raise SettingsError(f"ENV_FILE: {path} is a folder, not a file") from None
    except UnicodeDecodeError as error:
        raise SettingsError(
            f"ENV_FILE: {path} is not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from None
    except OSError as error:
        raise SettingsError(f"ENV_FILE: cannot read {path}: {error.strerror}") from None
    return path, text


def raw_values(*names: str, env_file: Path | EllipsisType | None = ...) -> dict[str, str]:
    """The set values of the variables ``names`` (upper case): the environment, then the env
    file (``...``: :func:`env_file_path`'s; parsed by python-dotenv, and only when the file holds
    anything), names case-insensitive, an empty value unset."""
    wanted = {name.lower(): name for name in names}
    found: dict[str, str] = {}
    for key, value in os.environ.items():
        name = wanted.get(key.lower())
        if name is not None and value and (name not in found or key == name):
            found[name] = value
    missing = [name for name in names if name not in found]
    if not missing:
        return found
    path = env_file_path() if env_file is ... else env_file
    if path is None or not _holds_anything(path):
        return found
    from dotenv import dotenv_values

    in_file = {key.lower(): value for key, value in dotenv_values(path).items()}
    for name in missing:
        value = in_file.get(name.lower())
        if value:
            found[name] = value
    return found


def _holds_anything(path: Path) -> bool:
    try:
        return bool(path.read_bytes().strip())
    except OSError as error:
        raise SettingsError(f"ENV_FILE: cannot read {path}: {error.strerror}") from None


def data_paths(data_dir: Path, database_path: Path | None) -> tuple[Path, Path]:
    """DATA_DIR and the database file, resolved and checked; ValueError names the variable."""
    data_dir = _resolved("DATA_DIR", data_dir)
    database = (
        data_dir / DATABASE_FILE
        if database_path is None
        else _resolved("DATABASE_PATH", database_path)
    )
    if _is_file(data_dir):
        raise ValueError(f"DATA_DIR: {data_dir} is a file, not a folder")
    if _is_dir(database):
        raise ValueError(
            f"DATABASE_PATH: {database} is a folder; name the database file "
            "(or leave DATABASE_PATH unset for DATA_DIR/erixcast.db)"
        )
    return data_dir, database


@dataclass(frozen=True)
class Places:
    """Where the data lives: all a command needs to find the watchdog that keeps it."""

    data_dir: Path
    database: Path


def read_places() -> Places:
    """DATA_DIR and the database from the environment and the env file, or SettingsError."""
    raw = raw_values("DATA_DIR", "DATABASE_PATH")
    database_path = raw.get("DATABASE_PATH")
    try:
        data_dir, database = data_paths(
            Path(raw.get("DATA_DIR", DEFAULT_DATA_DIR)),
            None if database_path is None else Path(database_path),
        )
    except ValueError as error:
        raise SettingsError(str(error)) from None
    return Places(data_dir, database)


def read_places_or_exit(program: str) -> Places:
    """:func:`read_places`, or the same one line and exit code as a bad setting anywhere."""
    try:
        return read_places()
    except SettingsError as error:
        exit_bad_setting(program, error)


def exit_bad_setting(program: str, error: SettingsError) -> NoReturn:
    print(f"{program}: bad setting: {error}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_SETTINGS) from None


def _resolved(variable: str, path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (RuntimeError, OSError) as error:  # ~unknown-user, a loop of links
        raise ValueError(f"{variable}: {path} cannot be used: {error}") from None


def _is_file(path: Path) -> bool:
    """Whether ``path`` is there and not a folder; a place we may not look into is left to the
    start-up's own check of DATA_DIR (which says so in one line)."""
    try:
        return path.exists() and not path.is_dir()
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False
