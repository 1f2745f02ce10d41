"""Prometheus metrics, read from the cached state at scrape time (no counters to keep in sync).

Prometheus naming: base units (seconds, bytes), ``_total`` for counters, ``_timestamp_seconds``
for moments (Unix time), ``_info`` for versions. Counters count since the watchdog started (a
restart resets them, which ``rate()`` and ``increase()`` handle). A series whose moment has not
happened yet (no drill so far, no backup of a tier) is absent rather than 0, so "older than"
rules never fire on a made-up epoch; ``absent()`` catches the missing ones. No label is a path
or a URL. ``monitoring/alerts.yml`` holds rules over these; ``promtool check rules`` accepts it.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from conf.layout import TIERS
from watchdog.rules import leader, restarts
from watchdog.rules.health import DEGRADED, HEALTHY, UNHEALTHY, HealthReport
from watchdog.rules.state import BotPhase, Integrity, WatchdogState
from watchdog.runtime.pauses import LAG_BUCKETS, STALL, LoopLag
from watchdog.version import app_version

if TYPE_CHECKING:
    from watchdog.web.protocols import Observable


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def health_metrics(report: HealthReport) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "erixcast_health_status", "1 for the current overall status", labels=["status"]
    )
    for name in (HEALTHY, DEGRADED, UNHEALTHY):
        status.add_metric([name], 1.0 if report.status == name else 0.0)
    yield status
    checks = GaugeMetricFamily(
        "erixcast_check_healthy", "1 while a /health check is healthy", labels=["check"]
    )
    for name, check in report.document.get("checks", {}).items():
        checks.add_metric([name], 1.0 if check.get("status") == HEALTHY else 0.0)
    yield checks


def bot_metrics(state: WatchdogState, now: float) -> Iterator[Metric]:
    bot = state.bot
    yield _gauge(
        "erixcast_bot_up",
        "1 while the bot process is polling",
        1.0 if bot.phase is BotPhase.RUNNING else 0.0,
    )
    yield _gauge("erixcast_bot_configured", "1 when the bot has a token", float(bot.configured))
    yield CounterMetricFamily(
        "erixcast_bot_restarts", "bot relaunches since the watchdog started", value=bot.restarts
    )
    yield _gauge(
        "erixcast_bot_consecutive_failures",
        "short bot runs in a row",
        bot.consecutive_failures,
    )
    yield _gauge(
        "erixcast_bot_crash_loop",
        "1 while the bot is in a crash loop (3 short runs in a row)",
        float(restarts.is_crash_loop(bot.consecutive_failures)),
    )
    if bot.last_heartbeat is not None:
        yield _gauge(
            "erixcast_bot_heartbeat_age_seconds",
            "seconds since the bot last polled Telegram",
            max(0.0, now - bot.last_heartbeat),
        )


def database_metrics(state: WatchdogState, table_rows: bool) -> Iterator[Metric]:
    db = state.database
    yield _gauge("erixcast_database_size_bytes", "size of the database file", db.size_bytes)
    yield _gauge(
        "erixcast_database_integrity_ok",
        "1 when the last integrity_check passed (or no database exists yet)",
        1.0 if db.integrity in (Integrity.OK, Integrity.MISSING) else 0.0,
    )
    if table_rows:
        rows = GaugeMetricFamily(
            "erixcast_database_rows", "rows per table at the last check", labels=["table"]
        )
        for table, count in sorted(db.tables.items()):
            rows.add_metric([table], count)
        yield rows
    if db.check_seconds is not None:
        yield _gauge(
            "erixcast_integrity_check_seconds",
            "duration of the last integrity check",
            db.check_seconds,
        )
    if db.checked_at is not None:
        yield _gauge(
            "erixcast_integrity_check_last_timestamp_seconds",
            "when the database was last checked (Unix time)",
            db.checked_at,
        )


def backup_metrics(state: WatchdogState) -> Iterator[Metric]:
    backups = state.backups
    last = GaugeMetricFamily(
        "erixcast_backup_last_success_timestamp_seconds",
        "creation time of the tier's newest verified backup (Unix time)",
        labels=["tier"],
    )
    size = GaugeMetricFamily(
        "erixcast_backup_last_size_bytes",
        "database size in the tier's newest verified backup",
        labels=["tier"],
    )
    duration = GaugeMetricFamily(
        "erixcast_backup_last_duration_seconds",
        "how long the tier's newest verified backup took (copy and proof)",
        labels=["tier"],
    )
    for tier, summary in sorted(backups.newest.items()):
        if summary is not None:
            last.add_metric([tier], summary.created_at)
            size.add_metric([tier], summary.size_bytes)
            duration.add_metric([tier], summary.duration_s)
    yield from (last, size, duration)
    failures = CounterMetricFamily(
        "erixcast_backup_failures",
        "failed backups per tier since the watchdog started",
        labels=["tier"],
    )
    for tier in TIERS:
        failures.add_metric([tier], backups.failures_total.get(tier, 0))
    yield failures
    interval = GaugeMetricFamily(
        "erixcast_backup_interval_seconds", "how often a scheduled tier is due", labels=["tier"]
    )
    for tier, seconds in sorted(backups.intervals.items()):
        interval.add_metric([tier], seconds)
    yield interval
    yield _gauge(
        "erixcast_backup_leader",
        "1 while this instance takes the database's backups, drills and offsite pushes (the "
        "only watchdog of a SQLite file, or the holder of a shared server's backup lock)",
        float(leader.may_back_up(state.leader.role)),
    )
    yield _gauge("erixcast_backups", "verified backups in the catalogue", backups.count)
    yield _gauge(
        "erixcast_backups_stored_bytes", "bytes the catalogue's files take", backups.total_bytes
    )


def recovery_metrics(state: WatchdogState) -> Iterator[Metric]:
    recovery = state.recovery
    outcomes = CounterMetricFamily(
        "erixcast_recoveries",
        "recoveries since the watchdog started, by outcome (restored a backup, or fresh start)",
        labels=["outcome"],
    )
    for outcome in ("restored", "fresh"):
        outcomes.add_metric([outcome], recovery.outcomes.get(outcome, 0))
    yield outcomes
    yield CounterMetricFamily(
        "erixcast_recovery_rows_salvaged",
        "rows merged back from damaged databases since the watchdog started",
        value=recovery.rows_salvaged,
    )
    if recovery.last_at is not None:
        yield _gauge(
            "erixcast_recovery_last_timestamp_seconds",
            "when the last recovery happened (Unix time)",
            recovery.last_at,
        )


def offsite_metrics(state: WatchdogState, every: float) -> Iterator[Metric]:
    offsite = state.offsite
    yield _gauge("erixcast_offsite_enabled", "1 when offsite pushes are on", float(offsite.enabled))
    if not offsite.enabled:
        return
    yield _gauge("erixcast_offsite_interval_seconds", "how often a backup goes offsite", every)
    if offsite.last_success_at is not None:
        yield _gauge(
            "erixcast_offsite_last_push_timestamp_seconds",
            "when the last offsite push succeeded (Unix time; since the watchdog started)",
            offsite.last_success_at,
        )
    if offsite.newest_at is not None:
        yield _gauge(
            "erixcast_offsite_newest_backup_timestamp_seconds",
            "creation time of the newest backup known to be offsite (Unix time)",
            offsite.newest_at,
        )
    yield CounterMetricFamily(
        "erixcast_offsite_failures",
        "failed offsite pushes since the watchdog started",
        value=offsite.failures_total,
    )
    yield _gauge(
        "erixcast_offsite_consecutive_failures", "failed offsite pushes in a row", offsite.failures
    )
    yield _gauge(
        "erixcast_offsite_refused_packages",
        "packages on the branch this key did not make (left untouched)",
        len(offsite.refused),
    )


def drill_metrics(state: WatchdogState) -> Iterator[Metric]:
    drill = state.drill
    if drill.last_at is None or not drill.results:
        return
    yield _gauge(
        "erixcast_drill_ok",
        "1 when every backup of the last restore drill passed",
        0.0 if drill.failed else 1.0,
    )
    yield _gauge(
        "erixcast_drill_last_timestamp_seconds",
        "when the last restore drill ran (Unix time)",
        drill.last_at,
    )
    yield _gauge(
        "erixcast_drill_failed_backups",
        "backups that failed the last restore drill",
        len(drill.failed),
    )


def storage_metrics(service: Observable) -> Iterator[Metric]:
    storage, settings = service.state.storage, service.settings
    yield _gauge(
        "erixcast_disk_usage_percent",
        "usage of the filesystem holding DATA_DIR",
        storage.disk_usage_percent,
    )
    yield _gauge(
        "erixcast_disk_warn_percent",
        "DISK_WARN_PERCENT: usage that degrades /health",
        settings.disk_warn_percent,
    )
    yield _gauge(
        "erixcast_disk_critical_percent",
        "DISK_CRITICAL_PERCENT: usage that makes /health unhealthy",
        settings.disk_critical_percent,
    )
    yield _gauge(
        "erixcast_disk_free_bytes", "free bytes on the DATA_DIR filesystem", storage.free_bytes
    )


def loop_metrics(lag: LoopLag) -> Iterator[Metric]:
    cumulative, buckets = 0, []
    for bound, count in zip((*LAG_BUCKETS, float("inf")), lag.buckets, strict=True):
        cumulative += count
        buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
    yield HistogramMetricFamily(
        "erixcast_watchdog_loop_lag_seconds",
        "how late the event loop that answers HTTP woke from a short sleep: time no request "
        "was answered",
        buckets=buckets,
        sum_value=lag.total,
    )
    yield CounterMetricFamily(
        "erixcast_watchdog_loop_stalls",
        f"wakes of the event loop more than {STALL * 1000:.0f} ms late",
        value=lag.stalls,
    )
    yield _gauge(
        "erixcast_watchdog_loop_lag_max_seconds",
        "the event loop's latest wake since the watchdog started",
        lag.longest,
    )


class StateCollector(Collector):
    def __init__(
        self, service: Observable, table_rows: bool = True, lag: LoopLag | None = None
    ) -> None:
        self.service = service
        self.table_rows = table_rows
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        service = self.service
        state = service.state
        now = service.clock.time()
        info = InfoMetricFamily("erixcast_build", "versions of the app, Python and SQLite")
        info.add_metric(
            [],
            {
                "version": app_version(),
                "python": platform.python_version(),
                "sqlite": state.database.sqlite_version,
            },
        )
        yield info
        yield _gauge(
            "erixcast_watchdog_start_time_seconds",
            "when the watchdog started (Unix time)",
            state.started_at,
        )
        yield from health_metrics(service.health())
        yield from bot_metrics(state, now)
        yield from database_metrics(state, self.table_rows)
        yield from backup_metrics(state)
        yield from recovery_metrics(state)
        yield from offsite_metrics(state, service.settings.backup_offsite_every)
        yield from drill_metrics(state)
        yield from storage_metrics(service)
        if self.lag is not None:
            yield from loop_metrics(self.lag)


def build_registry(
    service: Observable, table_rows: bool = True, lag: LoopLag | None = None
) -> CollectorRegistry:
    """``table_rows=False``: the registry anonymous scrapes get once STATS_TOKEN is set."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(service, table_rows, lag))
    return registry


class _OneFamily:
    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterator[Metric]:
        yield self.family


class Exposition:
    """``generate_latest(registry)``, the same bytes, with each family's text kept for as long
    as its samples do not change: most series hold still between two scrapes, and formatting
    them again was most of what a ``/metrics`` request cost (about 3 ms of the loop's thread on
    a busy machine). One text per family is kept: the latest."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._texts: dict[str, tuple[tuple[object, ...], bytes]] = {}

    def latest(self) -> bytes:
        return b"".join(self._text(family) for family in self.registry.collect())

    def _text(self, family: Metric) -> bytes:
        if any(s.exemplar is not None or s.native_histogram is not None for s in family.samples):
            return generate_latest(_OneFamily(family))  # type: ignore[arg-type]
        key = (
            family.type,
            family.documentation,
            family.unit,
            tuple(
                (s.name, tuple(sorted(s.labels.items())), s.value, s.timestamp)
                for s in family.samples
            ),
        )
        kept = self._texts.get(family.name)
        if kept is not None and kept[0] == key:
            return kept[1]
        text = generate_latest(_OneFamily(family))  # type: ignore[arg-type]
        self._texts[family.name] = (key, text)
        return text
