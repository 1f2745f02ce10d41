"""Prometheus metrics, read from the cached state at scrape time (no counters to keep in sync)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from watchdog.rules.health import DEGRADED, HEALTHY, UNHEALTHY
from watchdog.rules.state import BotPhase, Integrity

if TYPE_CHECKING:
    from watchdog.web.protocols import Observable


class StateCollector(Collector):
    def __init__(self, service: Observable, table_rows: bool = True) -> None:
        self.service = service
        self.table_rows = table_rows

    def collect(self) -> Iterator[Metric]:
        service = self.service
        state = service.state
        now = service.clock.time()
        report = service.health()

        status = GaugeMetricFamily(
            "erixcast_health_status", "1 for the current overall status", labels=["status"]
        )
        for name in (HEALTHY, DEGRADED, UNHEALTHY):
            status.add_metric([name], 1.0 if report.status == name else 0.0)
        yield status

        yield GaugeMetricFamily(
            "erixcast_bot_up",
            "1 while the bot process is polling",
            value=1.0 if state.bot.phase is BotPhase.RUNNING else 0.0,
        )
        # Gauges for counts that restart with the watchdog; rate() over them is still meaningful.
        yield GaugeMetricFamily(
            "erixcast_bot_restarts",
            "bot relaunches since the watchdog started",
            value=state.bot.restarts,
        )
        yield GaugeMetricFamily(
            "erixcast_bot_consecutive_failures",
            "short bot runs in a row (a crash loop at 3)",
            value=state.bot.consecutive_failures,
        )
        if state.bot.last_heartbeat is not None:
            yield GaugeMetricFamily(
                "erixcast_bot_heartbeat_age_seconds",
                "seconds since the bot last polled Telegram",
                value=max(0.0, now - state.bot.last_heartbeat),
            )
        yield GaugeMetricFamily(
            "erixcast_database_size_bytes",
            "size of the database file",
            value=state.database.size_bytes,
        )
        yield GaugeMetricFamily(
            "erixcast_database_integrity_ok",
            "1 when the last integrity_check passed (or no database exists yet)",
            value=1.0 if state.database.integrity in (Integrity.OK, Integrity.MISSING) else 0.0,
        )
        if self.table_rows:
            rows = GaugeMetricFamily(
                "erixcast_database_rows", "rows per table at the last check", labels=["table"]
            )
            for table, count in sorted(state.database.tables.items()):
                rows.add_metric([table], count)
            yield rows
        if state.database.check_seconds is not None:
            yield GaugeMetricFamily(
                "erixcast_integrity_check_seconds",
                "duration of the last integrity check",
                value=state.database.check_seconds,
            )
        yield GaugeMetricFamily(
            "erixcast_disk_usage_percent",
            "usage of the filesystem holding DATA_DIR",
            value=state.storage.disk_usage_percent,
        )
        yield GaugeMetricFamily(
            "erixcast_disk_free_bytes",
            "free bytes on the DATA_DIR filesystem",
            value=state.storage.free_bytes,
        )


def build_registry(service: Observable, table_rows: bool = True) -> CollectorRegistry:
    """``table_rows=False``: the registry anonymous scrapes get once STATS_TOKEN is set."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(service, table_rows))
    return registry
