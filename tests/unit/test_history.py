"""The bounded history behind the status page's charts: bounded by age and count, one size
sample per step, the backups' own measurements filling the time before the watchdog started."""

from __future__ import annotations

from watchdog.rules.history import MAX_SIZES, SIZE_STEP, WINDOW, BackupPoint, History

NOW = 1_800_000_000.0


def point(at: float, n: int, tier: str = "hourly") -> BackupPoint:
    return BackupPoint(at, f"b{n}", tier, 1000 + n, 0.5 + n / 100)


def test_one_size_sample_per_step_the_newest_kept():
    history = History()
    step_start = (NOW // SIZE_STEP) * SIZE_STEP
    history.note_size(step_start + 1, 100)
    history.note_size(step_start + 5, 200)
    history.note_size(step_start + SIZE_STEP + 1, 300)
    assert [p.size_bytes for p in history.sizes] == [200, 300]


def test_sizes_stay_bounded_by_age_and_count_however_long_it_runs():
    history = History()
    for i in range(3 * MAX_SIZES):
        history.note_size(NOW + i * SIZE_STEP, i)
    end = NOW + (3 * MAX_SIZES - 1) * SIZE_STEP
    assert len(history.sizes) <= MAX_SIZES
    assert history.sizes[0].at >= end - WINDOW
    assert history.sizes[-1].size_bytes == 3 * MAX_SIZES - 1


def test_backups_are_kept_once_in_the_window_oldest_first():
    history = History()
    old = point(NOW - WINDOW - 1, 0)
    recent = [point(NOW - 3600 * k, k) for k in (3, 1, 2)]
    history.note_backups([old, *recent], NOW)
    history.note_backups(recent, NOW)  # the catalogue is scanned again: nothing doubles
    assert [p.id for p in history.backup_runs(NOW)] == ["b3", "b2", "b1"]


def test_database_sizes_before_the_first_sample_come_from_the_backups():
    history = History()
    history.note_backups([point(NOW - 7200, 1), point(NOW - 60, 2)], NOW)
    history.note_size(NOW - 90, 5000)
    sizes = history.database_sizes(NOW)
    # the backup taken after the first sample adds nothing: the samples are better evidence
    assert [(p.at, p.size_bytes) for p in sizes] == [(NOW - 7200, 1001), (NOW - 90, 5000)]


def test_a_change_is_counted_only_when_what_is_drawn_changes():
    """The status page's charts are cached on ``changes``: the guard's same size every few
    seconds must not count, a new size or a new step must."""
    history = History()
    step_start = (NOW // SIZE_STEP) * SIZE_STEP
    history.note_size(step_start + 1, 100)
    first = history.changes
    history.note_size(step_start + 6, 100)
    history.note_size(step_start + 11, 100)
    assert history.changes == first
    assert history.sizes[-1].at == step_start + 11  # the newest moment is still kept
    history.note_size(step_start + 16, 101)
    assert history.changes == first + 1
    history.note_size(step_start + SIZE_STEP + 1, 101)
    assert history.changes == first + 2
