"""The chaos campaign (issue 12): the whole real stack — supervisord, the watchdog, the bot, the
fatal listener — under a steady workload of users, hit by random faults one at a time, with an
account of every update the bot acknowledged.

``python -m tests.chaos --duration 600 --seed 1`` (``make chaos``); ``tests/integration/
test_chaos.py`` runs a short form. The pieces:

- :mod:`tests.chaos.fakeapi` — the fake Bot API, recording when each offset was confirmed;
- :mod:`tests.chaos.stack` — the stack on a tmpfs DATA_DIR, its git server, its processes;
- :mod:`tests.chaos.workload` — the users, and the probes that tell a bot answers;
- :mod:`tests.chaos.monitor` — what is sampled all along (processes, RSS, backups, secrets);
- :mod:`tests.chaos.faults` — the fault table (add a class, list it in ``FAULTS``);
- :mod:`tests.chaos.accounting` — every acknowledged update, present or lost, and why;
- :mod:`tests.chaos.campaign` — the run, the verdict and the tables (:mod:`tests.chaos.report`).
"""
