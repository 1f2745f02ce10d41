"""The status page (``GET /``): what /health says, for a person. Health at a glance, every
check with its sentence, each tier's newest backup and age, offsite, the drill, recent events,
and two charts of the last days (the database's size, each backup's duration) from the
watchdog's bounded history.

A pure function of a ``StatusView``: the public health document (already scrubbed of paths and
URLs by ``exposure``), the history, and the events (scrubbed by the caller). One HTML document
with its style inline and its charts as inline SVG: nothing to fetch, so the page's
Content-Security-Policy can forbid every outside source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from watchdog.rules.history import WINDOW, History
from watchdog.web.charts import Series, megabytes, seconds, time_chart
from watchdog.web.wording import ago, moment, span

REFRESH_SECONDS = 30
MIN_SPAN = 3600.0
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
  background:#f1f5f9;color:#0f172a}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap}
h1{font-size:26px;margin:0}
h2{font-size:17px;margin:0 0 10px}
.badge{font-weight:700;text-transform:uppercase;letter-spacing:.04em;padding:4px 12px;
  border-radius:999px;color:#fff;font-size:14px}
.healthy{background:#16a34a}.degraded{background:#d97706}.unhealthy{background:#dc2626}
.muted{color:#64748b;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:14px;
  margin-top:14px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:14px 16px}
.wide{grid-column:1/-1}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #f1f5f9;vertical-align:top}
th{color:#475569;font-weight:600}
dl{display:grid;grid-template-columns:auto 1fr;gap:3px 12px;margin:0;font-size:14px}
dt{color:#475569}dd{margin:0}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px}
ol{margin:0;padding-left:0;list-style:none;font-size:13.5px}
li{padding:3px 0;border-bottom:1px solid #f1f5f9}
.charts{display:flex;flex-wrap:wrap;gap:14px}
"""


@dataclass(frozen=True)
class StatusView:
    document: Mapping[str, Any]
    """The /health document as anyone may see it."""
    history: History
    intervals: Mapping[str, float]
    durations: Mapping[str, float]
    """Seconds the newest backup of each tier took."""
    events: Sequence[tuple[float, str, str]]
    """(at, kind, message), oldest first, scrubbed."""
    now: float
    version: str


def _status_class(status: object) -> str:
    return str(status) if status in ("healthy", "degraded", "unhealthy") else "degraded"


def _dot(status: object) -> str:
    return f'<span class="dot {_status_class(status)}"></span>'


def _dl(rows: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows) + "</dl>"


def _checks(document: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_dot(check.get('status'))}{escape(name)}</td>"
        f"<td>{escape(str(check.get('status')))}</td>"
        f"<td>{escape(str(check.get('detail') or ''))}</td></tr>"
        for name, check in document.get("checks", {}).items()
    )
    return (
        '<section class="card wide" id="checks"><h2>Checks</h2><table>'
        f"<tr><th>check</th><th>status</th><th>what it says</th></tr>{rows}</table></section>"
    )


def _overview(document: Mapping[str, Any]) -> str:
    bot, db, storage = document["bot"], document["database"], document["storage"]
    records = db.get("records")
    bot_rows = [
        ("status", str(bot.get("status"))),
        ("restarts", str(bot.get("restarts"))),
        ("last poll", f"{span(bot.get('heartbeat_age_s'))} ago"),
    ]
    if bot.get("crash_loop"):
        bot_rows.append(("crash loop", "yes"))
    db_rows = [
        ("integrity", str(db.get("integrity"))),
        ("size", f"{db.get('size_mb')} MB"),
        ("rows", "not shown" if records is None else f"{records:,}"),
        ("last backup", _newest_backup_age(document)),
    ]
    disk_rows = [
        ("used", f"{storage.get('disk_usage_percent')} %"),
        ("free", f"{storage.get('free_mb')} MB"),
        ("persistent disk", "yes" if storage.get("persistent_disk") else "no"),
    ]
    recovery = document.get("recovery") or {}
    last = recovery.get("last") or {}
    recovery_rows = [("recoveries", str(recovery.get("count", 0)))]
    if recovery.get("last_at"):
        recovery_rows.append(("last", str(last.get("reason") or recovery["last_at"])))
        recovery_rows.append(("restored from", str(last.get("restored_from") or "nothing")))
    if recovery.get("fresh_start_at"):
        recovery_rows.append(("FRESH START", "no usable backup was found"))
    return "".join(
        f'<section class="card" id="{key}"><h2>{title}</h2>{_dl(rows)}</section>'
        for key, title, rows in (
            ("bot", "Bot", bot_rows),
            ("database", "Database", db_rows),
            ("disk", "Disk", disk_rows),
            ("recovery", "Recovery", recovery_rows),
        )
    )


def _newest_backup_age(document: Mapping[str, Any]) -> str:
    ages = [t["age_s"] for t in document["backups"].get("tiers", {}).values() if t]
    return f"{span(min(ages))} ago" if ages else "none yet"


def _backups(view: StatusView) -> str:
    backups = view.document["backups"]
    overdue = set(backups.get("overdue") or ())
    rows = []
    for tier, newest in backups.get("tiers", {}).items():
        every = view.intervals.get(tier)
        if newest is None:
            state = "none yet"
        elif tier in overdue:
            state = "OVERDUE"
        else:
            state = "ok"
        rows.append(
            f"<tr><td>{escape(tier)}</td>"
            f"<td>{escape(newest['id']) if newest else '-'}</td>"
            f"<td>{escape(span(newest['age_s'])) if newest else '-'}</td>"
            f"<td>{escape(str(newest['size_mb'])) + ' MB' if newest else '-'}</td>"
            f"<td>{escape(seconds(view.durations[tier])) if tier in view.durations else '-'}</td>"
            f"<td>{escape(span(every)) if every else 'on event'}</td>"
            f"<td>{escape(state)}</td></tr>"
        )
    offsite = backups.get("offsite", {})
    if offsite.get("enabled"):
        offsite_text = (
            f"newest {offsite.get('newest_id') or 'none yet'}, "
            f"{span(offsite.get('age_s'))} old; failures in a row: {offsite.get('failures')}"
        )
        if offsite.get("last_error"):
            offsite_text += f"; last error: {offsite['last_error']}"
    else:
        offsite_text = "off (set BACKUP_GIT_URL, BACKUP_GIT_TOKEN and BACKUP_AGE_KEY)"
    drill = backups.get("drill", {})
    drill_text = (
        "not run yet"
        if not drill.get("last_at")
        else f"{'passed' if drill.get('ok') else 'FAILED'} {ago(drill['last_at'], view.document.get('time'))}"
    )
    error = backups.get("last_error")
    extra = [("offsite", offsite_text), ("restore drill", drill_text)]
    if error:
        extra.insert(0, ("last error", str(error)))
    return (
        '<section class="card wide" id="backups"><h2>Backups</h2><table>'
        "<tr><th>tier</th><th>newest</th><th>age</th><th>size</th><th>took</th>"
        f"<th>every</th><th>state</th></tr>{''.join(rows)}</table>"
        f'<div style="margin-top:10px">{_dl(extra)}</div></section>'
    )


def chart_window(now: float, moments: Sequence[float]) -> tuple[float, float]:
    """The time axis: from the oldest point known (at most ``WINDOW`` back, at least
    ``MIN_SPAN`` before now) to now, so a young watchdog's charts are not one pixel wide."""
    oldest = min(moments, default=now)
    return max(now - WINDOW, min(oldest, now - MIN_SPAN)), now


def _charts(view: StatusView) -> str:
    sizes = view.history.database_sizes(view.now)
    runs = view.history.backup_runs(view.now)
    start, end = chart_window(view.now, [p.at for p in (*sizes, *runs)])
    size_chart = time_chart(
        "Database size",
        [Series("database", [(p.at, float(p.size_bytes)) for p in sizes])],
        start,
        end,
        megabytes,
    )
    tiers = sorted({p.tier for p in runs})
    duration_chart = time_chart(
        "Backup duration",
        [Series(t, [(p.at, p.duration_s) for p in runs if p.tier == t], dots=True) for t in tiers],
        start,
        end,
        seconds,
        empty="no backup yet",
    )
    return (
        '<section class="card wide" id="charts"><h2>History (up to 7 days)</h2><div class="charts">'
        f'<figure style="margin:0"><figcaption class="muted">Database size</figcaption>'
        f"{size_chart}</figure>"
        f'<figure style="margin:0"><figcaption class="muted">Backup duration (each backup, '
        f"by tier)</figcaption>{duration_chart}</figure></div></section>"
    )


def _events(view: StatusView) -> str:
    items = "".join(
        f'<li><span class="muted">{escape(moment(at))}</span> · <b>{escape(kind)}</b> · '
        f"{escape(message)}</li>"
        for at, kind, message in reversed(view.events[-20:])
    )
    return (
        '<section class="card wide" id="events"><h2>Recent events</h2>'
        f"<ol>{items or '<li>nothing yet</li>'}</ol></section>"
    )


class ChartCache:
    """The charts drawn once per change of the history and minute of the clock (the time axis
    moves by the minute), not once per request: at 200 requests/s the page would otherwise
    redraw the same week of points 200 times a second."""

    def __init__(self) -> None:
        self._key: tuple[int, int, int] | None = None
        self._html = ""

    def charts(self, view: StatusView) -> str:
        key = (id(view.history), view.history.changes, int(view.now // 60))
        if key != self._key:
            self._html = _charts(view)
            self._key = key
        return self._html


def render(view: StatusView, cache: ChartCache | None = None) -> str:
    document = view.document
    charts = cache.charts(view) if cache is not None else _charts(view)
    status = _status_class(document.get("status"))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>ErixCast: {escape(status)}</title>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<style>{_STYLE}</style></head><body><main>"
        f'<header><h1>ErixCast</h1><span class="badge {status}" id="status">{escape(status)}'
        f'</span><span class="muted">as of {escape(moment(view.now))} · watchdog up '
        f"{escape(span(document.get('uptime_s')))} · version {escape(view.version)} · "
        f"refreshes every {REFRESH_SECONDS} s</span></header>"
        f'<div class="grid">{_overview(document)}{_backups(view)}{charts}'
        f"{_checks(document)}{_events(view)}</div></main></body></html>"
    )
