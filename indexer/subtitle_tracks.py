"""The subtitles a media file carries: its embedded text subtitle streams (MKV/MP4:
subrip, ass/ssa, mov_text, webvtt...), read with PyAV by demuxing those streams only
(no audio or video is decoded), and the sidecar files beside it (movie.srt,
movie.en.srt, movie.eng.vtt, movie.ass, movie.ssa; any case), read with pysubs2.
No DB here: the subtitles stage (indexer/stages/carried_subtitles.py) saves what this reads.

    found = read_subtitles("/films/movie.mkv", subtitle_streams)
    found.tracks     # [SubtitleTrack("embedded #2 French (subrip)", "fr", lines=[...]), ...]
    found.notes      # worth knowing: a picture-based track skipped, an encoding guessed
    found.warnings   # a track or file that could not be read (the others still are)

A line's text is what the track says, cleaned of styling: ASS override tags ({\\i1}),
HTML-like tags (<i>, <font>, WebVTT's <v Bob>), line breaks (\\N) and ASS drawings.
Lines that only describe sounds ("[door creaks]") are kept.
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from indexer.language_codes import language_name, normalise

SIDECAR_FORMATS = {".srt": "subrip", ".vtt": "webvtt", ".ass": "ass", ".ssa": "ssa"}
# Words besides a language that may sit between a sidecar's stem and its extension
# (movie.en.forced.srt, movie.sdh.srt); other middles (movie.part2.srt) belong to
# another file.
SIDECAR_FLAGS = frozenset("forced sdh cc hi default full sub subs subtitles "
                          "hearing-impaired hearing_impaired".split())
MAX_SIDECAR_BYTES = 20 * 1024 * 1024     # a real subtitle file is far smaller
DEFAULT_LINE_S = 3.0     # a line whose end the track does not give (shortened by the next)
# Decoder names -> the format name people know (ffprobe's codec names).
_FORMAT_NAMES = {"srt": "subrip", "subrip": "subrip", "ssa": "ass", "ass": "ass",
                 "mov_text": "mov_text", "webvtt": "webvtt", "text": "text"}
_PICTURE_FORMATS = {"pgssub": "PGS", "hdmv_pgs_subtitle": "PGS", "dvdsub": "VobSub",
                    "dvd_subtitle": "VobSub", "dvbsub": "DVB", "dvb_subtitle": "DVB",
                    "xsub": "XSUB"}


@dataclass
class SubtitleTrack:
    label: str                      # how a person tells it apart: "movie.en.srt"
    language: str | None            # normalised code ("fr"), None when unknown
    origin: str                     # "embedded" or "sidecar"
    format: str                     # subrip, ass, mov_text, webvtt...
    lines: list[dict] = field(default_factory=list)   # {"start", "end", "text"}, by start

    def to_dict(self) -> dict:
        """What Store.save_subtitle_lines takes."""
        return {"track": self.label, "language": self.language, "lines": self.lines}


@dataclass
class CarriedSubtitles:
    tracks: list[SubtitleTrack] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---- text ---------------------------------------------------------------------------------
_ASS_BLOCK = re.compile(r"\{([^}]*)\}")
_DRAWING_MODE = re.compile(r"\\p(\d+)")
_MARKUP = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.]*>")   # <i>, </font>, <v Bob>, <00:01.000>
_BREAKS = re.compile(r"\\[Nnh]")


def _drop_ass_blocks(text: str) -> str:
    """Remove {...} override blocks, and the vector drawing between {\\p1} and {\\p0}
    (shapes, not words)."""
    out, pos, drawing = [], 0, False
    for m in _ASS_BLOCK.finditer(text):
        if not drawing:
            out.append(text[pos:m.start()])
        modes = _DRAWING_MODE.findall(m.group(1))
        if modes:
            drawing = int(modes[-1]) > 0
        pos = m.end()
    if not drawing:
        out.append(text[pos:])
    return "".join(out)


def clean_text(text: str, *, entities: bool = False) -> str:
    """A subtitle line's words on one line, styling removed; `entities`: decode
    &amp; and the like (WebVTT writes them)."""
    text = _drop_ass_blocks(text)
    text = _MARKUP.sub("", text)
    text = _BREAKS.sub(" ", text)
    if entities:
        text = html.unescape(text)
    return " ".join(text.split())


def _finish(lines: list[dict]) -> list[dict]:
    """Lines by start; one without an end lasts DEFAULT_LINE_S or until the next line;
    exact repeats (an ASS line drawn twice, for a shadow) are kept once."""
    lines.sort(key=lambda ln: (ln["start"], ln["end"] if ln["end"] is not None else 0.0))
    out, seen = [], set()
    for i, ln in enumerate(lines):
        if ln["end"] is None or ln["end"] <= ln["start"]:
            nxt = next((x["start"] for x in lines[i + 1:] if x["start"] > ln["start"]), None)
            end = ln["start"] + DEFAULT_LINE_S
            ln["end"] = round(min(end, nxt) if nxt is not None else end, 3)
        key = (round(ln["start"], 3), round(ln["end"], 3), ln["text"])
        if key not in seen:
            seen.add(key)
            out.append(ln)
    return out


# ---- embedded streams ---------------------------------------------------------------------
def _embedded_label(index: int, language: str | None, title: str | None, fmt: str) -> str:
    name = language_name(language)
    label = f"embedded #{index}" + (f" {name}" if name else "")
    if title and title.strip() and title.strip().casefold() != (name or "").casefold():
        label += f" – {title.strip()}"
    return f"{label} ({fmt})"


def _stream_text(sub) -> str:
    """The text of one decoded subtitle (PyAV's AssSubtitle: its dialogue, tags and all)."""
    raw = getattr(sub, "dialogue", None) or getattr(sub, "text", None) or b""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


CHECK_EVERY = 200          # packets between cancel checks while demuxing


def _read_embedded(path: str, found: CarriedSubtitles, check: Callable[[], None],
                   report: Callable[[float], None]) -> None:
    import av

    try:
        container = av.open(path, metadata_errors="replace")
    except (OSError, av.error.FFmpegError) as exc:
        found.warnings.append(f"The file's own subtitle tracks could not be read ({exc}).")
        return
    with container:
        offset = (container.start_time or 0) / 1e6
        text_streams, tracks = [], {}
        for s in container.streams:
            if s.type != "subtitle":
                continue
            cc = s.codec_context
            codec = cc.codec.name if cc is not None else None
            language = normalise(s.metadata.get("language") or s.metadata.get("LANGUAGE"))
            title = s.metadata.get("title") or s.metadata.get("TITLE")
            if cc is None:
                found.notes.append(f"embedded #{s.index} is in a subtitle format avindex "
                                   "cannot read; it was skipped.")
            elif cc.codec.bitmap_sub or not cc.codec.text_sub:
                kind = _PICTURE_FORMATS.get(codec, codec)
                found.notes.append(f"embedded #{s.index} ({kind}) holds pictures of text, "
                                   "not text, so it cannot be searched; it was skipped.")
            else:
                fmt = _FORMAT_NAMES.get(codec, codec)
                tracks[s.index] = SubtitleTrack(_embedded_label(s.index, language, title, fmt),
                                                language, "embedded", fmt)
                text_streams.append(s)
        if not text_streams:
            return
        failed = {i: 0 for i in tracks}
        duration = (container.duration or 0) / 1e6
        try:
            for n, pkt in enumerate(container.demux(*text_streams)):  # only these streams
                if n % CHECK_EVERY == 0:
                    check()
                if not pkt.size or pkt.pts is None:
                    continue
                i = pkt.stream.index
                try:
                    subs = pkt.stream.codec_context.decode(pkt)
                except av.error.FFmpegError:
                    failed[i] += 1
                    continue
                start = max(0.0, round(float(pkt.pts * pkt.time_base) - offset, 3))
                end = (round(start + float(pkt.duration * pkt.time_base), 3) if pkt.duration
                       else None)
                if duration and n % CHECK_EVERY == 0:
                    report(min(1.0, start / duration))
                for sub in subs:
                    for rect in getattr(sub, "rects", None) or [sub]:
                        text = clean_text(_stream_text(rect), entities=True)
                        if text:
                            tracks[i].lines.append({"start": start, "end": end, "text": text})
        except av.error.FFmpegError as exc:
            found.warnings.append(f"The file's subtitle tracks could be read only in part: "
                                  f"the file is damaged after some point ({exc}).")
        for i, track in tracks.items():
            if failed[i] and not track.lines:
                found.warnings.append(f"{track.label} could not be decoded; it was skipped.")
                continue
            if failed[i]:
                found.notes.append(f"{track.label}: {failed[i]} line(s) could not be decoded.")
            track.lines = _finish(track.lines)
            found.tracks.append(track)


# ---- sidecar files ------------------------------------------------------------------------
def _sidecar_language(middle: str) -> tuple[bool, str | None]:
    """(whether `middle` - what sits between the media's stem and the extension, e.g.
    ".en.forced" - marks a sidecar of that media, its language)."""
    if not middle:
        return True, None
    if not middle.startswith("."):
        return False, None
    language = None
    for part in middle[1:].split("."):
        code = normalise(part)          # en, eng, en-US, English
        if code is not None:
            language = language or code
        elif part.casefold() not in SIDECAR_FLAGS:
            return False, None
    return True, language


def sidecar_files(media_path: str | os.PathLike) -> list[tuple[Path, str | None]]:
    """The subtitle files beside a media file, by name, with the language their name
    gives: movie.srt, movie.en.srt, Movie.ENG.vtt, movie.English.forced.ass for
    movie.mkv. A file named after another media file of the folder is that file's
    (talk.en.srt is talk.en.mp4's when there is one)."""
    media = Path(media_path)
    stem = media.stem
    try:
        entries = list(os.scandir(media.parent))
    except OSError:
        return []
    from indexer.intake import MEDIA_EXTENSIONS
    media_stems = {os.path.splitext(e.name)[0].casefold() for e in entries
                   if os.path.splitext(e.name)[1].lower() in MEDIA_EXTENSIONS}
    out = []
    for e in entries:
        ours, language = sidecar_match(stem, e.name, media_stems)
        try:
            if ours and e.is_file():
                out.append((Path(e.path), language))
        except OSError:
            continue
    return sorted(out, key=lambda pl: pl[0].name.casefold())


def sidecar_match(stem: str, name: str, media_stems: set[str]) -> tuple[bool, str | None]:
    """(whether the file `name` is a sidecar of the media whose stem is `stem`, the
    language its name gives); `media_stems` (casefolded) are the folder's media files'."""
    base, ext = os.path.splitext(name)
    if ext.lower() not in SIDECAR_FORMATS or base[:len(stem)].casefold() != stem.casefold():
        return False, None
    middle = base[len(stem):]
    if middle and base.casefold() in media_stems:
        return False, None                        # another media file's own sidecar
    return _sidecar_language(middle)


def is_sidecar_name(path: str | os.PathLike) -> bool:
    return os.path.splitext(str(path))[1].lower() in SIDECAR_FORMATS


def decode_subtitle_bytes(data: bytes) -> tuple[str, str]:
    """(text, encoding). UTF-16 with a byte-order mark; else UTF-8 (with or without a
    BOM); else Windows-1252, the legacy encoding most Western subtitle files use; else
    Latin-1 (which reads any bytes: the few that 1252 leaves undefined are controls)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


_ENCODING_NAMES = {"cp1252": "Windows-1252 (Western European)", "latin-1": "Latin-1"}


def read_sidecar(path: Path, language: str | None, found: CarriedSubtitles) -> None:
    """Read one sidecar file into `found` (a track, or a warning saying why not)."""
    import pysubs2

    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            found.warnings.append(f"{name} is {size // (1024 * 1024)} MB, far too large for "
                                  "a subtitle file; it was not read.")
            return
        data = path.read_bytes()
    except OSError as exc:
        found.warnings.append(f"{name} could not be read ({exc.strerror or exc}).")
        return
    if not data.strip():
        found.warnings.append(f"{name} is empty.")
        return
    text, encoding = decode_subtitle_bytes(data)
    fmt = SIDECAR_FORMATS[path.suffix.lower()]
    problem = None
    if "\x00" in text:
        problem = "it holds binary data, not text"
    else:
        try:
            subs = pysubs2.SSAFile.from_string(text)
        except (pysubs2.Pysubs2Error, ValueError, KeyError, IndexError) as exc:
            problem = ("it is not in a subtitle format avindex knows (SubRip, WebVTT, ASS)"
                       if isinstance(exc, pysubs2.FormatAutodetectionError)
                       else f"it is damaged ({exc})")
    if problem:
        found.warnings.append(f"{name} could not be read as subtitles: {problem}. "
                              "Its lines are not indexed.")
        return
    entities = subs.format == "vtt"
    lines = []
    for ev in subs.events:
        if ev.is_comment or ev.end < ev.start:
            continue
        words = clean_text(ev.text, entities=entities)
        if words:
            lines.append({"start": ev.start / 1000.0, "end": ev.end / 1000.0, "text": words})
    if not lines:
        found.warnings.append(f"{name} holds no subtitle lines.")
        return
    if encoding in _ENCODING_NAMES:
        found.notes.append(f"{name} is not UTF-8; it was read as {_ENCODING_NAMES[encoding]}.")
    found.tracks.append(SubtitleTrack(name, language, "sidecar", fmt, _finish(lines)))


# ---- both ---------------------------------------------------------------------------------
def has_text_subtitle_stream(streams: list[dict]) -> bool:
    """Whether a probe's streams include a subtitle stream of a text format."""
    import av

    for s in streams:
        if s.get("kind") != "subtitle" or not s.get("codec"):
            continue
        try:
            if av.codec.Codec(s["codec"], "r").text_sub:
                return True
        except Exception:            # no such decoder in this FFmpeg
            continue
    return False


def read_subtitles(path: str | os.PathLike, streams: list[dict] | None = None, *,
                   check: Callable[[], None] = lambda: None,
                   report: Callable[[float], None] = lambda fraction: None
                   ) -> CarriedSubtitles:
    """Every subtitle track the file carries, embedded first (by stream), then sidecars
    (by name). `streams`: the probe's stream list; the container is opened only when it
    lists a subtitle stream (None: always). `check` is called now and then while
    demuxing (it may raise to cancel), `report` with the fraction of the file read."""
    path = os.fspath(path)
    found = CarriedSubtitles()
    if streams is None or any(s.get("kind") == "subtitle" for s in streams):
        _read_embedded(path, found, check, report)
    for sidecar, language in sidecar_files(path):
        read_sidecar(sidecar, language, found)
    return found
