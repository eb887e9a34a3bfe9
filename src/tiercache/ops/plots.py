"""Miss-ratio curves drawn to a PNG (``tiercache advise --plot``): the one importer of matplotlib.

The curves come from the shadow cache (:meth:`tiercache.shadow.ShadowCache.curve`, or a snapshot
read back with :class:`tiercache.mrc.MissRatioCurve`); drawing them is an operator's concern, so
it lives here and the core never imports matplotlib, not even lazily.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _format_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:g} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plot_curves(
    curves: Mapping[str, Sequence[tuple[int, float]]],
    path: str | Path,
    *,
    marks: Mapping[str, int] | None = None,
    title: str = "Estimated LRU miss ratio",
) -> None:
    """Draw miss-ratio curves to a PNG file.

    Args:
        curves: Label -> ``[(size in bytes, hit ratio), ...]`` (as :meth:`ShadowCache.curve`
            returns); drawn as miss ratio (``1 - hit ratio``) against size on a log scale.
        path: The PNG file to write.
        marks: Label -> size in bytes (e.g. a tier's current budget): a vertical line each.
        title: The plot's title.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'tiercache[plot]'``).
    """
    try:
        from matplotlib.colors import to_hex
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as exc:
        raise ImportError(
            "plotting miss-ratio curves needs matplotlib: pip install 'tiercache[plot]'"
        ) from exc
    # A bare Figure renders with Agg and leaves pyplot's global state (and backend) alone.
    figure = Figure(figsize=(8, 5), dpi=100)
    axes = figure.add_subplot()
    colors: dict[str, str] = {}
    for label, points in curves.items():
        ordered = sorted(points)
        (line,) = axes.plot(
            [size for size, _ in ordered],
            [1.0 - ratio for _, ratio in ordered],
            marker="o",
            label=label,
        )
        colors[label] = to_hex(line.get_color())
    for n, (label, size) in enumerate((marks or {}).items()):
        color = colors.get(label, f"C{n + len(curves)}")  # a curve's own colour if it has one
        axes.axvline(size, color=color, linestyle="--", label=f"{label}: current size")
    axes.set_xscale("log", base=2)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _format_bytes(x)))
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("cache size")
    axes.set_ylabel("miss ratio")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if curves or marks:
        axes.legend()
    figure.tight_layout()
    figure.savefig(str(path), format="png")


__all__ = ["plot_curves"]
