"""Subtitles a file carries (issue 19): embedded text streams of real MKV/MP4 files muxed by
ffmpeg at test time, sidecar files beside real media, the subtitles stage in the worker's
own job path and in full runs, the "Trust existing subtitles" setting, search, export and
the GUI's marks of where a line came from."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import srt

from app.runner import Runner
from app.settings import Settings, log_file
from app.stages import build_pipeline
from indexer.intake import take
from indexer.language_codes import normalise
from indexer.search import search
from indexer.stages import CarriedSubtitlesStage, Pipeline, ProbeStage, StageContext
from indexer.stages.speech import speech_coverage
from indexer.store import Store
from indexer.subtitle_tracks import clean_text, read_subtitles, sidecar_files
from indexer.subtitles import render
from tests.media_factory import make_media, wav_seconds

SRT = """1
00:00:00,500 --> 00:00:01,250
<i>Bonjour</i> tout le monde

2
00:00:01,500 --> 00:00:02,750
{\\an8}Le phare brille\\Nsur la mer

3
00:00:02,800 --> 00:00:03,400
[la porte grince]
"""
EXPECTED = [(0.5, 1.25, "Bonjour tout le monde"), (1.5, 2.75, "Le phare brille sur la mer"),
            (2.8, 3.4, "[la porte grince]")]
SENTENCE = "The lighthouse keeper counted seven ships before the storm came over the harbour."


def ffmpeg(*args: str) -> None:
    r = subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def clip_with_subtitles(path: Path, codec: str, srt_text: str = SRT) -> Path:
    """A 4 s clip (testsrc + sine) with one subtitle stream, tagged French."""
    sub = path.with_name(path.stem + "-source.txt")
    sub.write_text(srt_text, encoding="utf-8")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=15:duration=4",
           "-f", "lavfi", "-i", "sine=frequency=440:duration=4", "-f", "srt", "-i", str(sub),
           "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", codec,
           "-metadata:s:s:0", "language=fra", str(path))
    sub.unlink()
    return path


def pgs_clip(path: Path) -> Path:
    """A clip whose only subtitle stream is picture-based (PGS: two display sets)."""
    import struct

    def segment(pts: int, kind: int, body: bytes) -> bytes:
        return b"PG" + struct.pack(">IIBH", pts, pts, kind, len(body)) + body
    data = b""
    for t in (0.5, 1.5):
        pts = int(t * 90000)
        composition = struct.pack(">HHBHBBBB", 160, 120, 0x10, 0, 0x80, 0, 0, 0)
        data += segment(pts, 0x16, composition) + segment(pts, 0x17, b"\0") \
            + segment(pts, 0x80, b"")
    sup = path.with_suffix(".sup")
    sup.write_bytes(data)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=15:duration=3",
           "-f", "lavfi", "-i", "sine=duration=3", "-i", str(sup), "-map", "0", "-map", "1",
           "-map", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-c:s", "copy", str(path))
    sup.unlink()
    return path


class _Events(list):
    def send(self, event: dict) -> None:
        self.append(event)


class _NeverCancelled:
    def is_set(self) -> bool:
        return False


def read_carried(store: Store, path: Path) -> int:
    """Take a file and run its probe and subtitles jobs through the worker's job code."""
    from app.worker import _run_job
    pipeline = Pipeline([ProbeStage(), CarriedSubtitlesStage()])
    media_id = take(store, path).media_id
    while job := next((j for j in store.jobs(media_id) if j["state"] == "queued"), None):
        _run_job(store, pipeline, job["id"], _Events(), _NeverCancelled())
    return media_id


def lines(store: Store, media_id: int, source="subtitles", track=None) -> list[tuple]:
    return [(s["start"], s["end"], s["text"]) for s in store.transcript(media_id, source, track)]


def close_to(got: list[tuple], want: list[tuple], tol: float = 0.05) -> bool:
    return len(got) == len(want) and all(
        abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol and a[2] == b[2]
        for a, b in zip(got, want))


# ---- embedded streams -------------------------------------------------------------------
@pytest.mark.parametrize("ext, codec, fmt", [("mkv", "srt", "subrip"),
                                             ("mp4", "mov_text", "mov_text")])
def test_an_embedded_track_is_read_with_its_times_language_and_label(store, tmp_path, ext,
                                                                      codec, fmt):
    clip = clip_with_subtitles(tmp_path / f"film.{ext}", codec)
    mid = read_carried(store, clip)
    assert {j["stage"]: j["state"] for j in store.jobs(mid)} == {"probe": "done",
                                                                  "subtitles": "done"}
    (track,) = store.transcript_tracks(mid)
    assert track == {"source": "subtitles", "track": f"embedded #2 French ({fmt})",
                     "language": "fr", "lines": 3}
    assert close_to(lines(store, mid), EXPECTED)
    seg = store.transcript(mid)[1]
    assert (seg["source"], seg["language"], seg["words"]) == ("subtitles", "fr", [])
    assert store.media(mid)["status"] == "done"
    # said text to search: the hit says where it came from, and plays from its line
    (hit,) = search(store, "phare", mode="text")
    assert (hit.source, hit.track, hit.kind) == ("subtitles", f"embedded #2 French ({fmt})",
                                                 "said")
    assert abs(hit.seek - 1.5) <= 0.05 and "[phare]" in hit.snippet


def test_a_picture_based_or_missing_subtitle_stream_is_done_without_lines(store, tmp_path):
    pgs = read_carried(store, pgs_clip(tmp_path / "pgs.mkv"))
    plain = read_carried(store, make_media(tmp_path / "plain.mp4", seconds=2))
    for mid in (pgs, plain):
        jobs = {j["stage"]: (j["state"], j["error"]) for j in store.jobs(mid)}
        assert jobs["subtitles"] == ("done", None)
        assert store.transcript(mid) == [] and store.media(mid)["status"] == "done"
    media = store.media(pgs)
    saver = CarriedSubtitlesStage().run(media, StageContext(store=store))
    with store.transaction():
        note = saver(store)
    assert "embedded #2 (PGS) holds pictures of text" in note and "Warning" not in note
    assert CarriedSubtitlesStage().run(store.media(plain), StageContext())(store) is None


def test_text_is_cleaned_of_styling_and_sound_cues_are_kept():
    assert clean_text("{\\i1}Hello{\\i0}\\Nthere") == "Hello there"
    assert clean_text("<font color=\"red\">Red</font> <i>alert</i>") == "Red alert"
    assert clean_text("<v Bob>Fish &amp; chips", entities=True) == "Fish & chips"
    assert clean_text("{\\p1}m 0 0 l 100 0 100 100{\\p0}Sign") == "Sign"
    assert clean_text("♪ [music playing] ♪") == "♪ [music playing] ♪"
    assert clean_text("{\\an8}  ") == ""


# ---- sidecar files ----------------------------------------------------------------------
def test_sidecars_are_found_by_name_with_their_language(tmp_path):
    (tmp_path / "movie.mp4").write_bytes(b"")
    (tmp_path / "talk.en.mp4").write_bytes(b"")
    (tmp_path / "talk.mp4").write_bytes(b"")
    for name in ("movie.srt", "Movie.ENG.vtt", "movie.fr-CA.forced.ass", "movie.part2.srt",
                 "movies.srt", "movie.en.txt", "talk.en.srt", "talk.de.ssa"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    found = {p.name: lang for p, lang in sidecar_files(tmp_path / "movie.mp4")}
    assert found == {"movie.srt": None, "Movie.ENG.vtt": "en", "movie.fr-CA.forced.ass": "fr"}
    # talk.en.srt belongs to talk.en.mp4, not to talk.mp4 as its English track
    assert [p.name for p, _ in sidecar_files(tmp_path / "talk.mp4")] == ["talk.de.ssa"]
    assert [p.name for p, _ in sidecar_files(tmp_path / "talk.en.mp4")] == ["talk.en.srt"]
    assert [normalise(x) for x in ("fra", "fre", "pt_BR", "English", "und", "xx")] == [
        "fr", "fr", "pt", "en", None, None]


def test_sidecars_beside_a_wav_and_an_mp4_are_read_and_a_malformed_one_warns(store, tmp_path):
    wav = make_media(tmp_path / "talk.wav", seconds=4, video=False)
    (tmp_path / "talk.en.srt").write_text(SRT, encoding="utf-8")
    (tmp_path / "talk.vtt").write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n<v Ann>Fish &amp; <i>chips</i>\n", "utf-8")
    (tmp_path / "talk.fr.srt").write_bytes(bytes(range(256)) * 40)     # junk named .srt
    mp4 = make_media(tmp_path / "clip.mp4", seconds=3)
    (tmp_path / "clip.ssa").write_bytes(SRT.replace("Bonjour", "Déjà vu").encode("cp1252"))

    mid = read_carried(store, wav)
    assert store.media(mid)["status"] == "done"                # the junk did not fail it
    tracks = store.transcript_tracks(mid)
    assert [(t["track"], t["language"], t["lines"]) for t in tracks] == [
        ("talk.en.srt", "en", 3), ("talk.vtt", None, 1)]
    assert close_to(lines(store, mid, track="talk.en.srt"), EXPECTED)
    assert lines(store, mid, track="talk.vtt") == [(1.0, 2.5, "Fish & chips")]
    saver = CarriedSubtitlesStage().run(store.media(mid), StageContext(store=store))
    with store.transaction():
        note = saver(store)
    assert note.startswith("Warning: talk.fr.srt could not be read as subtitles")
    assert "Its lines are not indexed" in note

    clip = read_carried(store, mp4)
    assert lines(store, clip)[0][2] == "Déjà vu tout le monde"      # a Windows-1252 file
    found = read_subtitles(mp4)
    assert found.notes == ["clip.ssa is not UTF-8; it was read as Windows-1252 "
                           "(Western European)."]


# ---- the store: each source replaced on its own --------------------------------------------
def test_speech_and_subtitles_are_kept_apart(store):
    mid = store.add_media("/lib/a.mp4", "fp", 1, 1)
    speech = [{"start": 0.0, "end": 2.0, "text": "hello there", "language": "en",
               "words": [{"start": 0.0, "end": 0.5, "word": " hello"}]}]
    store.save_transcript(mid, "en", speech)
    store.save_subtitle_lines(mid, [
        {"track": "a.fr.srt", "language": "fr", "lines": [{"start": 0.1, "end": 1.9,
                                                           "text": "bonjour"}]},
        {"track": "a.de.srt", "language": "de", "lines": [{"start": 0.0, "end": 2.0,
                                                           "text": "hallo"}]}])
    store.save_transcript(mid, "en", speech)                    # transcribed again
    assert [(t["source"], t["track"], t["language"]) for t in store.transcript_tracks(mid)] == [
        ("speech", None, "en"), ("subtitles", "a.fr.srt", "fr"), ("subtitles", "a.de.srt", "de")]
    store.save_subtitle_lines(mid, [{"track": "a.fr.srt", "language": "fr",
                                     "lines": [{"start": 0.1, "end": 1.9, "text": "salut"}]}])
    assert [s["text"] for s in store.transcript(mid)] == ["hello there", "salut"]
    assert store.transcript(mid, "speech")[0]["words"][0]["word"] == " hello"
    # export: speech by default, else the track asked for; an unknown track is named
    assert [s["text"] for s in store.export_transcript(mid)] == ["hello there"]
    assert [s["text"] for s in store.export_transcript(mid, "a.fr.srt")] == ["salut"]
    assert [s["text"] for s in store.export_transcript(mid, "subtitles")] == ["salut"]
    with pytest.raises(LookupError, match="no subtitle track “x.srt” .*“a.fr.srt”"):
        store.export_transcript(mid, "x.srt")
    # a subtitle line is what its track says: corrections are for speech lines
    sub = store.transcript(mid, "subtitles")[0]
    with pytest.raises(ValueError, match="subtitle track 'a.fr.srt'"):
        store.correct_segment(sub["id"], "coucou")
    store.correct_segment(store.transcript(mid, "speech")[0]["id"], "hello their")
    store.save_subtitle_lines(mid, [{"track": "a.fr.srt", "language": "fr",
                                     "lines": [{"start": 0.0, "end": 1.9, "text": "salut"}]}])
    assert [(s["text"], s["corrected"]) for s in store.transcript(mid)] == [
        ("hello their", 1), ("salut", 0)]
    store.save_transcript(mid, "en", [])
    assert [t["source"] for t in store.transcript_tracks(mid)] == ["subtitles"]
    assert [s["text"] for s in store.export_transcript(mid)] == ["salut"]


def test_exported_subtitle_lines_keep_their_cues():
    segs = [{"start": a, "end": b, "text": t, "source": "subtitles"} for a, b, t in EXPECTED]
    cues = list(srt.parse(render("srt", segs)))
    assert [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in cues] == EXPECTED


def test_coverage_of_speech_by_subtitle_lines():
    regions = [(0.0, 4.0), (10.0, 12.0)]
    assert speech_coverage(regions, [{"start": 0.5, "end": 3.5}, {"start": 10, "end": 11}]) \
        == pytest.approx(1.0)
    assert speech_coverage(regions, [{"start": 2.0, "end": 3.0}]) == pytest.approx(3 / 6)
    assert speech_coverage([], [{"start": 0, "end": 1}]) is None


# ---- the pipeline and full runs -------------------------------------------------------------
def test_speech_waits_for_the_subtitles_and_text_follows_either(library, tmp_path):
    p = build_pipeline(Settings(whisper_model="tiny.en"), library)
    (tmp_path / "silent.srt").write_text(SRT, encoding="utf-8")
    audio = {"has_audio": True, "has_video": False, "path": str(tmp_path / "a.wav"),
             "streams": []}
    silent = {"has_audio": False, "has_video": True, "path": str(tmp_path / "silent.mp4"),
              "streams": [{"kind": "video", "codec": "h264"}]}
    assert p.followers("probe", audio) == ["subtitles"]
    assert p.followers("subtitles", audio, {"probe"}) == ["speech"]
    assert p.followers("speech", audio, {"probe", "subtitles"}) == ["speakers", "text"]
    # a video without sound: its subtitle lines still get a text index
    assert p.followers("probe", silent) == ["subtitles", "visual"]
    assert p.followers("subtitles", silent, {"probe"}) == ["text"]
    silent["path"] = str(tmp_path / "nothing.mp4")              # no subtitles either
    assert p.followers("subtitles", silent, {"probe"}) == []


def _srt(cues: list[tuple[float, float, str]]) -> str:
    return srt.compose([srt.Subtitle(i, *(srt.timedelta(seconds=x) for x in (a, b)), t)
                        for i, (a, b, t) in enumerate(cues, 1)])


def test_trusted_subtitles_replace_speech_recognition_and_otherwise_sit_beside_it(library,
                                                                                 tmp_path):
    from models.text_embed import load_query_embedder
    covered = make_media(tmp_path / "covered.wav", text=SENTENCE, video=False)
    d = wav_seconds(covered)
    (tmp_path / "covered.en.srt").write_text(_srt([
        (0.0, d / 2, "The lighthouse keeper counted seven ships"),
        (d / 2, d, "before the storm came over the harbour.")]), encoding="utf-8")
    (tmp_path / "covered.fr.srt").write_bytes(b"\x00\x01junk" * 100)
    partial = make_media(tmp_path / "partial.wav", text=SENTENCE + " " + SENTENCE, video=False)
    (tmp_path / "partial.en.srt").write_text(_srt([(0.0, 1.0, "The lighthouse")]), "utf-8")
    s = Store(library)
    ids = {p.name: take(s, p).media_id for p in (covered, partial)}
    s.close()

    counts = Runner(library, Settings(whisper_model="tiny.en",
                                      trust_existing_subtitles=True)).run()
    assert counts["failed"] == 0
    s = Store(library)
    try:
        mid = ids["covered.wav"]
        assert s.media(mid)["status"] == "done" and s.media(mid)["language"] == "en"
        assert {j["stage"]: j["state"] for j in s.jobs(mid)} == {
            "probe": "done", "subtitles": "done", "speech": "done", "speakers": "done",
            "text": "done"}
        notes = {j["stage"]: j["note"] for j in s.jobs(mid)}
        assert notes["subtitles"].startswith("Warning: covered.fr.srt could not be read")
        assert notes["speech"].startswith("Speech recognition skipped (“Trust existing "
                                          "subtitles” is on): the subtitle track "
                                          "“covered.en.srt” covers")
        assert "covered.fr.srt could not be read" in log_file(library).read_text("utf-8")
        # and `avindex list` shows them under the file
        from app.file_list import file_rows
        row = next(r for r in file_rows(s)[0] if r["id"] == mid)
        assert sorted(n.split(":")[0] for n in row["notes"]) == ["speech", "subtitles"]
        # no speech recognised: the trusted track is the transcript, and what is exported
        assert s.transcript(mid, "speech") == []
        assert [t["track"] for t in s.transcript_tracks(mid)] == ["covered.en.srt"]
        want = [(ln["start"], ln["end"], ln["text"]) for ln in s.transcript(mid)]
        cues = list(srt.parse(render("srt", s.export_transcript(mid))))
        assert close_to([(c.start.total_seconds(), c.end.total_seconds(), c.content)
                         for c in cues], want, tol=0.002)
        # said and meant: both find the subtitle lines of a file nobody transcribed
        hit = next(h for h in search(s, "harbour", mode="text") if h.media_id == mid)
        assert (hit.source, hit.track) == ("subtitles", "covered.en.srt")
        assert abs(hit.seek - d / 2) <= 0.05
        meant = search(s, "someone counting boats before bad weather", mode="semantic",
                       embedder=load_query_embedder())
        hit = next(h for h in meant if h.media_id == mid)
        assert (hit.kind, hit.source, hit.track) == ("similar", "subtitles", "covered.en.srt")
        # the track that covers a fifth of the speech does not stop recognition
        pid = ids["partial.wav"]
        assert [t["source"] for t in s.transcript_tracks(pid)] == ["speech", "subtitles"]
        indexed = {r[0] for r in s.db.execute(
            "SELECT s.source FROM segment_vec v JOIN segments s ON s.id = v.segment_id "
            "WHERE v.media_id = ?", (pid,))}
        assert indexed == {"speech"}                             # one transcript embedded
        subtitle_lines = lines(s, mid)
        s.queue_stage(mid, "speech")                             # transcribe it again...
    finally:
        s.close()
    assert Runner(library, Settings(whisper_model="tiny.en")).run()["failed"] == 0  # ...untrusted
    s = Store(library)
    try:
        assert [t["source"] for t in s.transcript_tracks(mid)] == ["speech", "subtitles"]
        assert lines(s, mid) == subtitle_lines                  # the subtitle lines stay
        assert s.transcript(mid, "speech")                     # recognised this time
    finally:
        s.close()


# ---- the GUI ---------------------------------------------------------------------------------
def test_the_transcript_panel_shows_one_source_at_a_time(qtbot):
    from PySide6.QtCore import Qt

    from ui.transcript_panel import TranscriptPanel
    panel = TranscriptPanel()
    qtbot.addWidget(panel)
    segments = [
        {"id": 1, "start": 0.0, "end": 2.0, "text": "hello there", "source": "speech",
         "track": None, "corrected": 0},
        {"id": 5, "start": 0.5, "end": 2.0, "text": "bonjour", "source": "subtitles",
         "track": "embedded #2 French (subrip)", "corrected": 0},
        {"id": 9, "start": 0.4, "end": 2.0, "text": "hallo", "source": "subtitles",
         "track": "film.de.srt", "corrected": 0}]
    panel.set_transcript(7, "film.mkv", segments, "done")
    assert [panel.source_combo.itemText(i) for i in range(panel.source_combo.count())] == [
        "Speech recognition", "Subtitles: embedded #2 French (subrip)", "Subtitles: film.de.srt"]
    assert not panel.source_combo.isHidden()
    assert [s["text"] for s in panel.model.segments] == ["hello there"]
    assert panel.model.flags(panel.model.index(0)) & Qt.ItemIsEditable     # correctable
    assert "from speech recognition" in panel.model.index(0).data(Qt.ToolTipRole)
    panel.source_combo.setCurrentIndex(1)                        # what a pick in it does
    assert [s["text"] for s in panel.model.segments] == ["bonjour"]
    index = panel.model.index(0)
    assert not panel.model.flags(index) & Qt.ItemIsEditable
    assert "from the subtitle track “embedded #2 French (subrip)”" in index.data(
        Qt.ToolTipRole)
    panel.set_transcript(7, "film.mkv", segments, "done")       # reloaded: the pick stays
    assert panel.current_source() == ("subtitles", "embedded #2 French (subrip)")
    panel.set_transcript(8, "talk.wav", segments[:1], "done")
    assert panel.source_combo.isHidden() and panel.source_label.text() == "Speech recognition"


def test_a_search_result_from_subtitles_carries_a_marker(qtbot):
    from PySide6.QtCore import Qt

    from ui.rich_text_delegate import HTML_ROLE
    from ui.search_panel import HIT_ROLE, HitsModel
    model = HitsModel()
    base = {"media_id": 1, "path": "/v/film.mkv", "name": "film.mkv", "start": 1.5, "end": 2.7,
            "seek": 1.5, "kind": "said", "kinds": ["said"], "snippet": "le [phare] brille",
            "score": 1.0}
    model.set_hits([dict(base, source="subtitles", track="film.fr.srt"),
                    dict(base, source="speech", track=None, seek=9.0)])
    sub, spoken = model.index(0, HitsModel.MATCH_COL), model.index(1, HitsModel.MATCH_COL)
    assert sub.data() == "Said · subtitles (film.fr.srt)" and spoken.data() == "Said"
    assert "subtitles (film.fr.srt)" in sub.data(HTML_ROLE)
    assert "subtitle track “film.fr.srt”" in model.index(0, 0).data(Qt.ToolTipRole)
    assert sub.data(HIT_ROLE)["track"] == "film.fr.srt"


def test_the_cli_exports_the_source_asked_for_and_marks_hits_from_subtitles(library, tmp_path,
                                                                            capsys):
    import json

    from app.cli import main
    clip = clip_with_subtitles(tmp_path / "film.mkv", "srt")
    s = Store(library)
    mid = read_carried(s, clip)
    s.save_transcript(mid, "en", [{"start": 0.4, "end": 2.0, "text": "Hello everyone.",
                                   "words": []}])
    s.close()
    out = tmp_path / "film.srt"
    assert main(["export", str(clip), "-o", str(out)]) == 0            # speech by default
    assert [c.content for c in srt.parse(out.read_text("utf-8"))] == ["Hello everyone."]
    capsys.readouterr()
    track = "embedded #2 French (subrip)"
    assert main(["export", str(clip), "--source", track, "-o", str(out), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["source"], done["track"], done["segments"]) == ("subtitles", track, 3)
    assert [c.content for c in srt.parse(out.read_text("utf-8"))] == [t for *_, t in EXPECTED]
    assert main(["export", str(clip), "--source", "film.de.srt", "--json"]) == 4
    assert "no subtitle track “film.de.srt”" in json.loads(capsys.readouterr().out)["error"]
    assert main(["search", "phare"]) == 0
    assert f"[said · subtitles ({track})]" in capsys.readouterr().out


def test_a_sidecar_added_later_is_read_without_transcribing_again(library, tmp_path):
    talk = make_media(tmp_path / "talk.wav", text=SENTENCE, video=False)
    d = wav_seconds(talk)
    s = Store(library)
    mid = take(s, talk).media_id
    s.close()
    settings = Settings(whisper_model="tiny.en")
    assert Runner(library, settings).run()["failed"] == 0
    s = Store(library)
    speech_done = {j["stage"]: j["finished_at"] for j in s.jobs(mid)}["speech"]
    assert [t["source"] for t in s.transcript_tracks(mid)] == ["speech"]

    sidecar = tmp_path / "talk.de.srt"
    sidecar.write_text(_srt([(0.0, d, "Der Leuchtturmwärter zählte sieben Schiffe")]), "utf-8")
    intake = take(s, sidecar)
    assert (intake.action, intake.media_id) == ("subtitles", mid)
    assert {j["stage"]: j["state"] for j in s.jobs(mid)} == {
        "probe": "done", "subtitles": "queued", "speech": "done", "speakers": "done",
        "text": "queued"}
    s.close()
    assert Runner(library, settings).run()["failed"] == 0
    s = Store(library)
    jobs = {j["stage"]: j for j in s.jobs(mid)}
    assert {k: j["state"] for k, j in jobs.items()} == dict.fromkeys(jobs, "done")
    assert jobs["speech"]["finished_at"] == speech_done        # not transcribed again
    assert [(t["source"], t["track"]) for t in s.transcript_tracks(mid)] == [
        ("speech", None), ("subtitles", "talk.de.srt")]
    hit = next(h for h in search(s, "Leuchtturmwärter", mode="text") if h.media_id == mid)
    assert (hit.source, hit.track) == ("subtitles", "talk.de.srt")

    # the sidecar deleted: its lines go at the next read; one without its media is said so
    sidecar.unlink()
    assert take(s, sidecar).action == "subtitles"
    orphan = take(s, tmp_path / "elsewhere.en.srt")
    assert orphan.action == "no_media" and orphan.media_id is None
    assert "media file of the same name" in orphan.detail
    s.close()
    assert Runner(library, settings).run()["failed"] == 0
    s = Store(library)
    assert [t["source"] for t in s.transcript_tracks(mid)] == ["speech"]
    s.close()
