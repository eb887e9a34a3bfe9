"""How the benchmark tables print times, counts and ratios (one definition of each)."""

from __future__ import annotations

import statistics

from tiercache.parsing import KIB, MIB


def fmt_s(seconds: float) -> str:
    """µs under a millisecond, ms under a second, else seconds."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"


def fmt_us(seconds: float) -> str:
    """µs under a millisecond, else ms (never seconds: the programs' tables)."""
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def fmt_count(values: list[int]) -> str:
    """The median, with the range when the rounds differ."""
    med = statistics.median(values)
    text = f"{med:g}"
    return text if min(values) == max(values) else f"{text} ({min(values)}-{max(values)})"


def size_label(n: float) -> str:
    """A size in bytes as the tables and axes show it: ``64 KiB``, ``1 MiB``, ``1.5 MiB``."""
    if n >= MIB:
        return f"{n / MIB:g} MiB"
    if n >= KIB:
        return f"{n / KIB:g} KiB"
    return f"{n:g} B"


def fmt_ratio(ratio: float | None) -> str:
    """A ratio in the targets table: three decimals near 1, else two; a dash for none."""
    if ratio is None:
        return "—"
    return f"{ratio:.3f}x" if 0.9 < ratio < 1.2 else f"{ratio:.2f}x"
