"""Render a transcript as plain text, SubRip, WebVTT or JSON.

Every function takes the dict produced by ``engine.Transcript.to_dict()``
(as stored or downloaded) and returns the file's content; nothing here
touches Django or the filesystem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

Transcript = Mapping[str, Any]

# Players drop or reject zero-length and reversed cues, so a segment whose
# end is not after its start is stretched to this length.
MIN_CUE_MS = 1


class Cue(NamedTuple):
    """One subtitle: whole-millisecond times and single-line text."""

    start_ms: int
    end_ms: int
    text: str


def to_txt(transcript: Transcript) -> str:
    """Return one line per segment, ending with a newline (empty if silent)."""
    lines = [cue.text for cue in _cues(transcript)]
    return "".join(f"{line}\n" for line in lines)


def to_srt(transcript: Transcript) -> str:
    """Return SubRip subtitles: numbered cues separated by blank lines."""
    blocks = [
        f"{number}\n{_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')}\n{cue.text}\n"
        for number, cue in enumerate(_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    """Return WebVTT subtitles; a silent transcript is just the header."""
    blocks = [
        f"{_timestamp(cue.start_ms, '.')} --> {_timestamp(cue.end_ms, '.')}\n{_vtt_escape(cue.text)}\n"
        for cue in _cues(transcript)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_json_bytes(transcript: Transcript) -> bytes:
    """Return UTF-8 JSON with one top-level field, or list item, per line."""
    fields = ",\n ".join(_json_field(key, value) for key, value in transcript.items())
    body = f"{{\n {fields}\n}}\n" if fields else "{}\n"
    return body.encode("utf-8")


def _cues(transcript: Transcript) -> list[Cue]:
    """Return the non-empty segments as cues ordered by start time."""
    cues = sorted(_segment_cues(transcript.get("segments") or ()))
    return [cue for cue in cues if cue.text]


def _segment_cues(segments: Sequence[Mapping[str, Any]]) -> Iterator[Cue]:
    for segment in segments:
        # Work in whole milliseconds so rounding cannot produce "60,000"
        # seconds or a cue that ends before it starts once formatted.
        start_ms = max(round(float(segment["start"]) * 1000), 0)
        end_ms = max(round(float(segment["end"]) * 1000), start_ms + MIN_CUE_MS)
        # Blank lines end a cue in SRT and VTT, so text is kept to one line.
        text = " ".join(str(segment.get("text", "")).split())
        yield Cue(start_ms, end_ms, text)


def _timestamp(total_ms: int, separator: str) -> str:
    """Format milliseconds as ``HH:MM:SS<separator>mmm``."""
    seconds, ms = divmod(total_ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{ms:03d}"


def _vtt_escape(text: str) -> str:
    # "&" and "<" start entities and tags in WebVTT cue text; escaping ">"
    # too means "-->" cannot appear and be read as a timing line.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json_field(key: str, value: Any) -> str:
    if isinstance(value, list) and value:
        items = ",\n  ".join(_json(item) for item in value)
        return f"{_json(key)}: [\n  {items}\n ]"
    return f"{_json(key)}: {_json(value)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
