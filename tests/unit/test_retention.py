from watchdog.rules.retention import Held, newest_per_tier, over_retention, to_free


def backups() -> list[Held]:
    items = [Held(f"h{i}", "hourly", 1000 + i, 10) for i in range(6)]
    items += [Held(f"d{i}", "daily", 500 + i, 100) for i in range(3)]
    items += [Held("m0", "manual", 10, 1000)]
    return items


def test_keeps_the_newest_n_of_each_tier_and_prunes_oldest_first():
    doomed = over_retention(backups(), {"hourly": 4, "daily": 2, "manual": 10})
    assert doomed == ["d0", "h0", "h1"]


def test_the_newest_of_a_tier_is_kept_even_with_a_count_of_zero():
    doomed = over_retention(backups(), {"hourly": 0, "daily": 0, "manual": 0})
    assert "h5" not in doomed and "d2" not in doomed and "m0" not in doomed
    assert len(doomed) == 7


def test_under_pressure_frees_oldest_first_but_never_a_tiers_newest():
    assert newest_per_tier(backups()) == {"h5", "d2", "m0"}
    assert to_free(backups(), 150) == ["d0", "d1"]
    everything = to_free(backups(), 10**9)
    assert set(everything) == {"d0", "d1", "h0", "h1", "h2", "h3", "h4"}
