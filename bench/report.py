"""Writing a benchmark's result: ``OUT/<stem>.json`` (the numbers) and ``OUT/<stem>.md`` (the table), printed."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.audio_io import atomic_output
from pipeline.errors import log


def write_report(out: str | Path, stem: str, payload: dict, table: str) -> None:
    """Write ``payload`` as ``out/<stem>.json`` and ``table`` (markdown) as ``out/<stem>.md``; print the table."""
    out = Path(out)
    with atomic_output(out / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
    with atomic_output(out / f"{stem}.md") as tmp:
        tmp.write_text(table)
    print(table)
    log.info("table: %s", out / f"{stem}.md")
