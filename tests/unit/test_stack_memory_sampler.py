"""The memory bench counts what runs: a watchdog's check workers (``python -m
watchdog.data.checker``, its children) get their own column, summed over those alive at once,
and the total of one sample is every process of the tree."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.bench.stack_memory import ROLES, Sampler, cell
from tests.helpers import REPO

PARENT = """
import os, subprocess, sys
workers = [
    subprocess.Popen(
        [sys.executable, "-m", "watchdog.data.checker", sys.argv[1], "1", str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    for _ in range(2)
]
for worker in workers:  # one answer each: the worker is up, its imports done
    worker.stdin.write("quick\\n")
    worker.stdin.flush()
    assert worker.stdout.readline()
print("ready", flush=True)
sys.stdin.readline()
for worker in workers:
    worker.kill()
    worker.wait()
"""


def test_the_watchdogs_workers_are_their_own_column(tmp_path):
    database = tmp_path / "x.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(database), "watchdog", "run"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdin is not None
        assert parent.stdout.readline().strip() == "ready"
        sampler = Sampler([parent.pid])
        sampler.sample()
    finally:
        if parent.stdin is not None:
            parent.stdin.close()
        try:
            parent.wait(60)
        finally:
            parent.kill()
    assert set(sampler.peaks) == {"watchdog", "workers"}
    assert sampler.most == {"watchdog": 1, "workers": 2}
    assert sampler.peaks["workers"] > 2 * 5, "two Python processes weigh more than 10 MB"
    assert abs(sampler.total - sum(sampler.peaks.values())) < 0.01
    assert cell(sampler, "workers").endswith("(×2)") and "workers" in ROLES
