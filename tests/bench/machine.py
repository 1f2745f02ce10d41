"""What the machine itself did during a measured window, beside our processes: the CPU time the
hypervisor gave to others (steal, from ``/proc/stat``) and the kernel's pressure stall totals
(``/proc/pressure``: time some task waited for a CPU, for I/O). A latency outlier in a window
where steal or I/O stalls rose is the machine's; one in a quiet window is ours."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _steal_s() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) * _TICK_S  # cpu user nice system idle iowait irq softirq steal
    except (OSError, IndexError, ValueError):
        return None


def _stalled_s(resource: str) -> float | None:
    """The ``some`` total: time in which at least one task waited for ``resource``."""
    try:
        for line in Path(f"/proc/pressure/{resource}").read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class MachineSample:
    steal_s: float | None
    cpu_wait_s: float | None
    io_wait_s: float | None

    @classmethod
    def now(cls) -> MachineSample:
        return cls(_steal_s(), _stalled_s("cpu"), _stalled_s("io"))


@dataclass(frozen=True)
class MachineWindow:
    before: MachineSample
    after: MachineSample

    def cell(self) -> str:
        """``steal 0 / CPU wait 120 / I/O wait 35 ms`` (``?`` where the kernel does not say)."""

        def ms(first: float | None, last: float | None) -> str:
            return "?" if first is None or last is None else f"{(last - first) * 1000:.0f}"

        before, after = self.before, self.after
        return (
            f"steal {ms(before.steal_s, after.steal_s)} / "
            f"CPU wait {ms(before.cpu_wait_s, after.cpu_wait_s)} / "
            f"I/O wait {ms(before.io_wait_s, after.io_wait_s)} ms"
        )
