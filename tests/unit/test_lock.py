import pytest

from watchdog.data.fs import AlreadyRunning, InstanceLock


def test_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    path = tmp_path / "run" / "watchdog.lock"
    with InstanceLock(path):
        with pytest.raises(AlreadyRunning) as caught:
            InstanceLock(path).acquire()
        assert "another watchdog" in str(caught.value)
    # Released: the next one gets it.
    with InstanceLock(path):
        pass
