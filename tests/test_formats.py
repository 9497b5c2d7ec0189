"""Tests for rendering transcripts as TXT, SRT, WebVTT and JSON."""

import json

from transcriptions import formats


def make_transcript(*segments: tuple[float, float, str]) -> dict:
    """Return a transcript dict in the engine's shape with the given segments."""
    return {
        "language": "en",
        "language_probability": 1.0,
        "duration": 10.0,
        "model": "tiny.en",
        "text": " ".join(text for _, _, text in segments),
        "segments": [
            {"id": number, "start": start, "end": end, "text": text, "words": []}
            for number, (start, end, text) in enumerate(segments, start=1)
        ],
    }


MEETING = make_transcript((0.0, 2.5, "Hello everyone."), (2.5, 5.123, " Let's begin. "))
SILENT = make_transcript()


def test_txt_has_one_stripped_line_per_segment():
    assert formats.to_txt(MEETING) == "Hello everyone.\nLet's begin.\n"


def test_srt_numbers_cues_and_separates_them_with_blank_lines():
    assert formats.to_srt(MEETING) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello everyone.\n\n2\n00:00:02,500 --> 00:00:05,123\nLet's begin.\n"
    )


def test_vtt_has_header_and_dotted_timestamps():
    assert formats.to_vtt(MEETING) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello everyone.\n\n00:00:02.500 --> 00:00:05.123\nLet's begin.\n"
    )


def test_timestamps_count_hours_past_one():
    long_meeting = make_transcript((3723.4567, 3725.0, "Still here."))

    assert "01:02:03,457 --> 01:02:05,000" in formats.to_srt(long_meeting)
    assert "01:02:03.457 --> 01:02:05.000" in formats.to_vtt(long_meeting)


def test_rounding_never_yields_sixty_seconds():
    almost_a_minute = make_transcript((59.9996, 61.0, "Tick."))

    assert "00:01:00,000 --> 00:01:01,000" in formats.to_srt(almost_a_minute)


def test_empty_transcript_renders_valid_empty_files():
    assert formats.to_txt(SILENT) == ""
    assert formats.to_srt(SILENT) == ""
    assert formats.to_vtt(SILENT) == "WEBVTT\n"
    assert json.loads(formats.to_json_bytes(SILENT)) == SILENT


def test_cue_that_does_not_end_after_its_start_is_stretched():
    glitch = make_transcript((4.0, 4.0, "Hm."), (6.0, 5.5, "Uh."))

    assert formats.to_srt(glitch) == (
        "1\n00:00:04,000 --> 00:00:04,001\nHm.\n\n2\n00:00:06,000 --> 00:00:06,001\nUh.\n"
    )


def test_cues_are_ordered_by_start_time():
    shuffled = make_transcript((5.0, 6.0, "Second."), (1.0, 2.0, "First."))

    assert formats.to_txt(shuffled) == "First.\nSecond.\n"
    assert formats.to_srt(shuffled).startswith("1\n00:00:01,000 --> 00:00:02,000\nFirst.\n")


def test_blank_segments_are_skipped_and_line_breaks_flattened():
    messy = make_transcript((0.0, 1.0, "  "), (1.0, 2.0, "Two\n\nlines"))

    assert formats.to_srt(messy) == "1\n00:00:01,000 --> 00:00:02,000\nTwo lines\n"


def test_vtt_escapes_markup_characters():
    markup = make_transcript((0.0, 1.0, "Q&A <b>now</b> --> later"))

    assert "Q&amp;A &lt;b&gt;now&lt;/b&gt; --&gt; later\n" in formats.to_vtt(markup)


def test_json_round_trips_as_utf8_with_one_segment_per_line():
    accented = make_transcript((0.0, 1.0, "Grüße, café."), (1.0, 2.0, "日本語"))

    data = formats.to_json_bytes(accented)

    assert json.loads(data.decode("utf-8")) == accented
    assert "Grüße".encode() in data
    segment_lines = [line for line in data.decode().splitlines() if line.lstrip().startswith('{"id"')]
    assert len(segment_lines) == 2
