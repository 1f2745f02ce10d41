"""The deployment files agree with each other and with the settings' defaults."""

import configparser
import re

from conf.settings import FIELDS
from tests.helpers import REPO

RENDER_DEFAULT_SHUTDOWN_DELAY = 30
"""Seconds Render waits after SIGTERM before SIGKILL when ``maxShutdownDelaySeconds`` is not set
(Render's docs: default 30, 1–300 allowed). A service with a disk may not set it at all — Render
refuses "max shutdown delay is not supported for services with a disk" (FIELD-NOTES, Render) —
so with our disk the default is the budget."""


def supervisord_program() -> configparser.SectionProxy:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read(REPO / "supervisord.conf")
    return parser["program:watchdog"]


def render_value(key: str) -> str:
    match = re.search(rf"^\s*{key}:\s*(.+)$", (REPO / "render.yaml").read_text(), re.MULTILINE)
    assert match, f"render.yaml has no {key}"
    return match.group(1).strip()


def test_shutdown_fits_inside_supervisord_which_fits_inside_render():
    budget = FIELDS["shutdown_budget"].default
    stopwait = int(supervisord_program()["stopwaitsecs"])
    assert budget < stopwait < RENDER_DEFAULT_SHUTDOWN_DELAY


def test_render_blueprint_sets_no_shutdown_delay_on_a_service_with_a_disk():
    text = (REPO / "render.yaml").read_text()
    assert re.search(r"^\s*disk:", text, re.MULTILINE)
    assert not re.search(r"^\s*maxShutdownDelaySeconds\s*:", text, re.MULTILINE)


def test_supervisord_runs_the_watchdog_as_agreed():
    program = supervisord_program()
    assert program["command"] == "python -m watchdog run"
    assert program["killasgroup"] == "true"
    assert program["stdout_logfile"] == "/dev/stdout"
    assert program["stdout_logfile_maxbytes"] == "0"


def test_render_blueprint_has_a_disk_where_data_dir_points():
    text = (REPO / "render.yaml").read_text()
    assert render_value("startCommand") == "sh bin/start"
    assert render_value("healthCheckPath") == "/health"
    assert render_value("runtime") == "python"
    assert render_value("plan") != "free"
    mount = render_value("mountPath")
    data_dir = re.search(r"key: DATA_DIR\s+value: (\S+)", text).group(1)
    assert data_dir == mount or data_dir.startswith(mount + "/")
    assert re.search(r"key: TELEGRAM_BOT_TOKEN\s+sync: false", text)


def test_make_run_and_render_start_the_same_way():
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    assert "exec sh bin/start" in recipe
    script = (REPO / "bin" / "start").read_text()
    assert script.startswith("#!/bin/sh\n")
    assert 'exec supervisord -c "$conf"' in script
    assert (REPO / "bin" / "start").stat().st_mode & 0o111


def test_render_python_matches_the_one_tests_run_on():
    import platform

    pinned = re.search(
        r"key: PYTHON_VERSION\s+value: (\S+)", (REPO / "render.yaml").read_text()
    ).group(1)
    assert pinned.rsplit(".", 1)[0] == platform.python_version().rsplit(".", 1)[0]
    assert (REPO / ".python-version").read_text().strip() == pinned
