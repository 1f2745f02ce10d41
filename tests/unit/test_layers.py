"""The tree's layers hold: each layer imports only those below it, no module imports itself back
through others, and the watchdog and the bot never import each other. Read from the source's
own import statements (``TYPE_CHECKING`` blocks included: a type is a dependency too). The
sandbox (the Bot API stand-in of ``make demo``) stands apart from all of them."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

LAYERS = ["conf", "rules", "data", "offsite", "runtime", "web", "cli"]
"""Bottom to top; the watchdog's packages by their folder, ``conf`` shared by everyone."""
LEAVES = {"watchdog.version", "watchdog.fatal_listener"}
"""Top-level modules of the watchdog that import nothing of it: usable from every layer."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for top in ("conf", "watchdog", "bot", "sandbox"):
        for path in (REPO / top).rglob("*.py"):
            found[module_name(path)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules ``path`` imports (``from a.b import c`` counts a.b.c when it is a
    module, else a.b)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in modules:
                found.add(name)
    return found


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "conf":
        return "conf"
    if parts[0] == "watchdog" and len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return None


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, imported in graph().items():
        mine = layer_of(module)
        if mine is None:
            continue
        for other in imported:
            theirs = layer_of(other)
            if other in LEAVES or (theirs is None and other.startswith("watchdog.__")):
                continue
            if theirs is None:
                if other.startswith("watchdog") and other not in LEAVES:
                    wrong.append(f"{module} -> {other} (not in a layer)")
                continue
            if LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.append(f"{module} ({mine}) -> {other} ({theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_watchdog_and_the_bot_never_import_each_other():
    wrong = [
        f"{module} -> {other}"
        for module, imported in graph().items()
        for other in imported
        if module.split(".")[0] in ("watchdog", "bot", "conf")
        and other.split(".")[0] in ("watchdog", "bot")
        and other.split(".")[0] != module.split(".")[0]
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_the_sandbox_stands_apart():
    """The Bot API stand-in talks to the bot only as Telegram does, over HTTP."""
    wrong = [
        f"{module} -> {other}"
        for module, imported in graph().items()
        for other in imported
        if module.split(".")[0] == "sandbox" and other.split(".")[0] != "sandbox"
    ]
    wrong += [
        f"{module} -> {other}"
        for module, imported in graph().items()
        for other in imported
        if module.split(".")[0] != "sandbox" and other.split(".")[0] == "sandbox"
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle():
    edges = graph()
    for package in list(edges):  # a package's face imports its own modules: not a circle
        edges[package] = {other for other in edges[package] if not other.startswith(package + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for other in sorted(edges.get(module, ())):
            if state.get(other) == 1:
                return [*stack[stack.index(other) :], other]
            if other not in state and (circle := visit(other)):
                return circle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state and (circle := visit(module)):
            raise AssertionError(" -> ".join(circle))


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` in the repository."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "ENV_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy_in(modules: set[str], heavy: frozenset[str]) -> list[str]:
    return sorted(m for m in modules if m in heavy or m.split(".")[0] in heavy)


def test_the_terminal_client_path_loads_nothing_heavy():
    """What a command asking the running watchdog imports: its module, where the data is, the
    loopback client. No settings framework, no data libraries, no urllib (tests/cli checks the
    same of real runs against a real watchdog)."""
    from tests.cli.conftest import HEAVY_MODULES

    modules = modules_after(
        "from watchdog.cli import build_parser, command_module\n"
        "from conf.env import read_places\n"
        "read_places()\n"
        "for name in ('backup', 'status', 'list', 'verify', 'drill'):\n"
        "    command_module(name); build_parser(name)\n"
        "import watchdog.cli.remote"
    )
    assert "watchdog.cli.remote" in modules and "watchdog.cli.loopback" in modules
    assert heavy_in(modules, HEAVY_MODULES) == []


def test_the_watchdog_on_sqlite_loads_no_postgresql_nor_the_bots_libraries():
    modules = modules_after(
        "from watchdog.cli import run\n"
        "from watchdog.runtime.service import WatchdogService\n"
        "from watchdog.web.front import WebFront\n"
        "from watchdog.offsite import OffsiteStore"
    )
    assert "aiohttp" in modules  # what it is made of is there
    heavy = frozenset({"psycopg", "git", "sqlalchemy", "dataset", "alembic", "telegram", "httpx"})
    assert heavy_in(modules, heavy) == []


def test_a_watchdog_without_offsite_loads_no_offsite_code():
    """No BACKUP_GIT_URL: neither the packaging, the age encryption, zstd nor git's plumbing
    in the watchdog's memory (a few MB of its RSS); the store comes with the setting."""
    code = (
        "from watchdog.cli import run\n"
        "from watchdog.runtime.service import WatchdogService\n"
        "from watchdog.web.front import WebFront\n"
        "from conf.settings import load_settings\n"
        "from watchdog.offsite import store_from_settings\n"
        "assert store_from_settings(load_settings()) is None\n"
    )
    modules = modules_after(code)
    offsite = sorted(m for m in modules if m.startswith("watchdog.offsite."))
    assert offsite == ["watchdog.offsite.errors"]
    assert heavy_in(modules, frozenset({"pyrage", "zstandard"})) == []
    with_store = modules_after(code + "from watchdog.offsite import OffsiteStore\n")
    assert {"watchdog.offsite.store", "pyrage", "zstandard"} <= with_store
