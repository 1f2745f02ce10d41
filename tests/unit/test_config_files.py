"""The deployment files agree with each other and with the settings' defaults."""

import configparser
import re

from conf.settings import Settings
from tests.helpers import REPO


def supervisord_program() -> configparser.SectionProxy:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read(REPO / "supervisord.conf")
    return parser["program:watchdog"]


def render_value(key: str) -> str:
    match = re.search(rf"^\s*{key}:\s*(.+)$", (REPO / "render.yaml").read_text(), re.MULTILINE)
    assert match, f"render.yaml has no {key}"
    return match.group(1).strip()


def test_shutdown_fits_inside_supervisord_which_fits_inside_render():
    budget = Settings.model_fields["shutdown_budget"].default
    stopwait = int(supervisord_program()["stopwaitsecs"])
    render_delay = int(render_value("maxShutdownDelaySeconds"))
    assert budget < stopwait < render_delay <= 300


def test_supervisord_runs_the_watchdog_as_agreed():
    program = supervisord_program()
    assert program["command"] == "python -m watchdog run"
    assert program["killasgroup"] == "true"
    assert program["stdout_logfile"] == "/dev/stdout"
    assert program["stdout_logfile_maxbytes"] == "0"


def test_render_blueprint_has_a_disk_where_data_dir_points():
    text = (REPO / "render.yaml").read_text()
    assert render_value("startCommand") == "supervisord -c supervisord.conf"
    assert render_value("healthCheckPath") == "/health"
    assert render_value("runtime") == "python"
    assert render_value("plan") != "free"
    mount = render_value("mountPath")
    data_dir = re.search(r"key: DATA_DIR\s+value: (\S+)", text).group(1)
    assert data_dir == mount or data_dir.startswith(mount + "/")
    assert re.search(r"key: TELEGRAM_BOT_TOKEN\s+sync: false", text)


def test_render_python_matches_the_one_tests_run_on():
    import platform

    pinned = re.search(
        r"key: PYTHON_VERSION\s+value: (\S+)", (REPO / "render.yaml").read_text()
    ).group(1)
    assert pinned.rsplit(".", 1)[0] == platform.python_version().rsplit(".", 1)[0]
    assert (REPO / ".python-version").read_text().strip() == pinned
