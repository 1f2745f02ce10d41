"""The sample alerting rules (``monitoring/alerts.yml``) pass the real ``promtool check rules``,
and ``promtool test rules`` shows each firing on the series it is for and quiet on a healthy
watchdog (``tests/monitoring/alerts_test.yml``). Debian's ``prometheus`` package has promtool
(``.ci/run`` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.helpers import REPO
from watchdog.web import metrics

RULES = REPO / "monitoring" / "alerts.yml"
RULE_TESTS = REPO / "tests" / "monitoring" / "alerts_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool not found: apt-get install prometheus (.ci/run does it for CI)"
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules():
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_each_rule_fires_when_it_should_and_not_otherwise():
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_use_only_series_the_watchdog_exports():
    exported = set(re.findall(r'"(erixcast_[a-z_]+)"', (REPO / metrics.__file__).read_text()))
    counters = {name + "_total" for name in exported}
    used = set(re.findall(r"\b(erixcast_[a-z_]+)", RULES.read_text()))
    assert used, "the rules read erixcast_ series"
    assert used <= exported | counters, sorted(used - exported - counters)
