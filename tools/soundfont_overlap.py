"""Which samples two SoundFonts share: is a "held-out" SoundFont really unheard by priors trained on others?

SoundFonts are often built from one another (MuseScore_General is an adaptation of Fluid R3 Mono; sf_GMbank
shares most of its samples with TimGM6mb), so a new file name does not mean new sounds. This reads each file's
sample headers (``pdta/shdr``: name, length, rate, root key) and the sample data (``sdta/smpl``) and counts, for
the samples whose name matches a pattern (e.g. ``violin``), how many the other file has under the same name and
how many of those are bit-identical. Bit-identity is only comparable between two .sf2 files (16-bit PCM); an
.sf3 stores Ogg-compressed samples, so against it only the names count.

    python tools/soundfont_overlap.py --held-out MuseScore_General_Lite sf_GMbank Merlin \\
        --train FluidR3_GM TimGM6mb
"""
from __future__ import annotations

import argparse
import hashlib
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.errors import UserError, run_cli  # noqa: E402
from pipeline.render import resolve_soundfont  # noqa: E402

SHDR_RECORD = 46          # bytes per sample header: name[20], start, end, loop start, loop end, rate, key, ...


@dataclass(frozen=True)
class SampleHeader:
    name: str             # without the stereo suffix " (L)" / "(R)"
    frames: int
    rate: int             # Hz
    root_key: int         # MIDI note
    digest: str           # md5 of the stored sample bytes (PCM in .sf2, Ogg in .sf3)


def _subchunks(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """``{tag: (begin, end)}`` of the chunks in ``data[start:end]``; a LIST chunk is listed by its list type
    (``sdta``, ``pdta``, ...) and its subchunks are walked too (RIFF: tag, little-endian size, body, a pad byte
    after an odd size)."""
    found = {}
    while start + 8 <= end:
        tag, size = data[start:start + 4], struct.unpack("<I", data[start + 4:start + 8])[0]
        body = start + 8
        if tag == b"LIST":
            found[data[body:body + 4]] = (body + 4, body + size)
            found.update(_subchunks(data, body + 4, body + size))
        else:
            found[tag] = (body, body + size)
        padded = size & 1 and data[body + size:body + size + 1] == b"\0"   # some writers skip the pad byte
        start = body + size + int(bool(padded))
    return found


def sample_headers(path: str | Path) -> list[SampleHeader]:
    """Every sample of a SoundFont (the terminal "EOS" record dropped)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise UserError(f"{path}: not a SoundFont (no RIFF sfbk header)")
    chunks = _subchunks(data, 12, min(len(data), 8 + struct.unpack("<I", data[4:8])[0]))
    for tag in (b"shdr", b"smpl"):
        if tag not in chunks:
            raise UserError(f"{path}: no '{tag.decode()}' chunk: not a complete SoundFont (.sf2/.sf3)")
    records, samples = (data[slice(*chunks[tag])] for tag in (b"shdr", b"smpl"))
    bytes_per_frame = 2 if path.suffix.lower() == ".sf2" else 1    # sf3: start/end are byte offsets
    headers = []
    for offset in range(0, len(records) - SHDR_RECORD, SHDR_RECORD):     # the last record is "EOS"
        raw = records[offset:offset + SHDR_RECORD]
        name = raw[:20].split(b"\0")[0].decode("latin-1")
        start, end, _, _, rate = struct.unpack("<5I", raw[20:40])
        stored = samples[bytes_per_frame * start:bytes_per_frame * end]
        headers.append(SampleHeader(re.sub(r"\s*\((L|R)\)$", "", name).strip(), end - start, rate, raw[40],
                                    hashlib.md5(stored).hexdigest()))
    return headers


def overlap(held_out: Sequence[SampleHeader], train: Sequence[SampleHeader], pattern: str) -> dict:
    """Of the ``held_out`` samples whose name matches ``pattern`` (case-insensitive): how many names ``train``
    also has, and how many of those have bit-identical data there."""
    wanted = {h.name: h for h in held_out if re.search(pattern, h.name, re.IGNORECASE)}
    known = {}
    for h in train:
        known.setdefault(h.name, set()).add(h.digest)
    shared = [name for name in wanted if name in known]
    return {"samples": len(wanted), "names_shared": len(shared),
            "identical": sum(wanted[name].digest in known[name] for name in shared)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--held-out", nargs="+", required=True, help="SoundFonts of the evaluation set (short name or path)")
    p.add_argument("--train", nargs="+", required=True, help="SoundFonts the priors were trained on")
    p.add_argument("--match", nargs="+", default=["violin", "(?<!electric )piano"],
                   help="sample-name patterns (regular expressions, case-insensitive; default: violins, and pianos "
                        "that are not electric)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fonts = {name: sample_headers(resolve_soundfont(name)) for name in [*args.held_out, *args.train]}
    print("| held-out SoundFont | training SoundFont | samples matching | names shared | bit-identical |")
    print("|---|---|---|---|---|")
    for held in args.held_out:
        for train in args.train:
            for pattern in args.match:
                o = overlap(fonts[held], fonts[train], pattern)
                print(f"| {held} | {train} | {o['samples']} `{pattern}` | {o['names_shared']} | {o['identical']} |")
    return 0


if __name__ == "__main__":
    run_cli(main)
