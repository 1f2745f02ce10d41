"""The chaos campaign's short form (``make chaos`` runs the ten-minute one): the real stack under
a live workload, a fixed seed, one fault of each quick kind — kill -9 of the bot, the watchdog
and supervisord, a deploy, page damage, a deleted database, a damaged newest backup, a stale
``-wal``, a full disk — each proven recovered, then every acknowledged update accounted for.

About a minute and a half on its own; it runs in one xdist worker like any other file.
"""

from __future__ import annotations

import pytest

from tests.chaos.campaign import Options, run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def test_a_short_campaign_recovers_from_every_fault_and_loses_nothing_unexplained(tmp_path):
    options = Options.short()
    options.workdir = tmp_path / "chaos"
    result = run(options)
    report = result.render()
    print(report)
    assert result.runs, report
    assert result.ok, report
