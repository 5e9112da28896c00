"""tools/soundfont_overlap.py: shared sample names and bit-identical sample data between two SoundFonts."""
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import soundfont_overlap  # noqa: E402


def chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<I", len(body)) + body


def write_sf2(path: Path, samples: dict[str, np.ndarray]) -> Path:
    """A minimal SoundFont: the sample headers and the 16-bit sample data (what the tool reads)."""
    pcm, headers, start = b"", b"", 0
    for name, audio in samples.items():
        data = audio.astype("<i2").tobytes()
        end = start + len(audio)
        headers += name.encode().ljust(20, b"\0") + struct.pack("<5IBbHH", start, end, start, end, 44100, 60, 0, 0, 1)
        pcm += data + b"\0" * 92            # 46 zero frames between samples, as the format asks
        start = end + 46
    headers += b"EOS".ljust(20, b"\0") + b"\0" * 26
    body = b"sfbk" + chunk(b"LIST", b"sdta" + chunk(b"smpl", pcm)) + chunk(b"LIST", b"pdta" + chunk(b"shdr", headers))
    path.write_bytes(chunk(b"RIFF", body))
    return path


def test_shared_names_and_identical_data_are_counted_per_instrument(tmp_path):
    rng = np.random.default_rng(0)
    tone, other = (rng.integers(-3000, 3000, 400) for _ in range(2))
    train = write_sf2(tmp_path / "train.sf2", {"Violin C4(L)": tone, "Violin C4(R)": tone, "Violin G5": other,
                                               "Piano C4": tone})
    held = write_sf2(tmp_path / "held.sf2", {"Violin C4": tone, "Violin G5": tone[::-1], "Violin A6": other,
                                             "Electric Piano C4": tone, "Piano D4": other})
    headers = soundfont_overlap.sample_headers(held)
    assert [h.name for h in headers] == ["Violin C4", "Violin G5", "Violin A6", "Electric Piano C4", "Piano D4"]
    assert headers[0].frames == 400 and headers[0].rate == 44100 and headers[0].root_key == 60
    trained = soundfont_overlap.sample_headers(train)
    assert trained[0].name == "Violin C4"                       # the stereo suffix is dropped
    # C4 identical, G5 same name but other data, A6 new
    assert soundfont_overlap.overlap(headers, trained, "violin") == {"samples": 3, "names_shared": 2, "identical": 1}
    assert soundfont_overlap.overlap(headers, trained, "(?<!electric )piano") == {"samples": 1, "names_shared": 0, "identical": 0}


def test_a_file_that_is_not_a_soundfont_is_a_user_error(tmp_path):
    (tmp_path / "x.sf2").write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    with pytest.raises(UserError, match="x.sf2: not a SoundFont"):
        soundfont_overlap.sample_headers(tmp_path / "x.sf2")
