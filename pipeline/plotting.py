"""Matplotlib without a display, and one way to write a figure: atomically (a crash never leaves half a PNG),
creating the folder, closing the figure."""
from __future__ import annotations

from pathlib import Path

from pipeline.audio_io import atomic_output


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (works on headless machines)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders made, replaced atomically) and close it."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
    return path
