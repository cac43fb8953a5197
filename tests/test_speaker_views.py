"""Speakers everywhere a transcript shows: subtitle and transcript export, the CLI, search
and the transcript panel. The library is tests/test_speakers.py's: conversations of real
recorded speech (a LibriVox reader, the `cards` speaker) through the real speech and
speakers stages on real weights, so who speaks when is known."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import srt

from app.cli import main
from indexer.search import Filters, UnknownSpeaker, search
from test_speakers import indexed, pytestmark  # noqa: F401  (the library fixture, its skip)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_MEDIA_BACKEND", "ffmpeg")

_CUE = re.compile(r"^(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)\n(.*?)(?:\n\n|\Z)",
                  re.MULTILINE | re.DOTALL)


def cli(capsys, store, *argv):
    """The real CLI in this process: (exit code, stdout, stderr)."""
    code = main([*argv, "--library", str(store.path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def words_of(store, media_id):
    return [w for line in store.transcript(media_id, "speech") for w in line["words"]]


def speaker_of_word(store, media_id, word) -> dict | None:
    mid = (word["start"] + word["end"]) / 2
    return store.speakers_over(media_id, [(mid, mid)])[0]


def reader_and_cards(store, files):
    """talk1's speakers: (the reader's, the cards speaker's), found from the true turns."""
    talk1, truth = files["talk1"]
    reader = store.speaker_at(talk1, truth[0][0] + 0.5)
    cards = store.speaker_at(talk1, next(s for s, _, who in truth if who == "cards") + 0.3)
    assert reader and cards and reader["id"] != cards["id"]
    return reader, cards


def word_said_only_by(store, files, speaker_id) -> dict:
    """A content word of talk1 said by this speaker and by no one else in the library."""
    talk1, _ = files["talk1"]
    said: dict[str, set] = {}
    first: dict[str, dict] = {}
    for name in ("talk1", "alone"):
        media_id, _ = files[name]
        for w in words_of(store, media_id):
            key = re.sub(r"\W", "", w["word"]).lower()
            who = speaker_of_word(store, media_id, w)
            said.setdefault(key, set()).add(who["speaker_id"] if who else None)
            if media_id == talk1:
                first.setdefault(key, w)
    for key, w in first.items():
        if len(key) >= 5 and said[key] == {speaker_id}:
            return dict(w, key=key)
    raise AssertionError(f"no word of talk1 is said by speaker {speaker_id} alone")


def test_exports_say_who_speaks_and_no_cue_mixes_two(indexed, capsys, tmp_path):
    store, files = indexed
    talk1, _ = files["talk1"]
    speakers = {s["name"] for s in store.list_speakers(talk1)}
    assert len(speakers) == 2
    words = words_of(store, talk1)

    code, out, _ = cli(capsys, store, "export", str(talk1), "-f", "vtt", "-o", "-")
    assert code == 0 and out.startswith("WEBVTT")
    cues = _CUE.findall(out)
    assert len(cues) >= 6                 # six true turns: at least a cue each
    seen = set()
    for start, end, text in cues:
        m = re.match(r"<v ([^>]+)>", text)
        assert m, text                    # every cue says who speaks
        name = m.group(1)
        assert name in speakers
        seen.add(name)
        # every word shown in the cue is said by that speaker
        inside = [w for w in words if seconds(start) - 0.01 <= w["start"] < seconds(end) - 0.01]
        assert inside, (start, end, text)
        for w in inside:
            who = speaker_of_word(store, talk1, w)
            assert who is None or who["name"] == name, (start, end, text, w, who)
    assert seen == speakers

    plain = tmp_path / "plain.srt"
    assert cli(capsys, store, "export", str(talk1), "-f", "srt", "-o", str(plain))[0] == 0
    assert not any(c.content.split(": ")[0] in speakers
                   for c in srt.parse(plain.read_text(encoding="utf-8")))
    code, out, _ = cli(capsys, store, "export", str(talk1), "-f", "srt", "--speaker-names",
                       "-o", "-")
    named = list(srt.parse(out))
    assert code == 0 and len(named) >= 6
    for cue in named:
        name, _, rest = cue.content.partition(": ")
        assert name in speakers and rest, cue.content
        assert all(len(line) <= 42 for line in cue.content.splitlines())

    code, out, _ = cli(capsys, store, "export", str(talk1), "-f", "json", "-o", "-")
    doc = json.loads(out)
    assert doc["speakers"][0] == store.list_speakers(talk1)[0]["name"]    # first to speak
    assert set(doc["speakers"]) == speakers
    for seg in doc["segments"]:
        assert seg["speaker"] in speakers
        assert seg["words"] and all(w["speaker"] in speakers | {None} for w in seg["words"])
    by_word = {w["speaker"] for seg in doc["segments"] for w in seg["words"]}
    assert speakers <= by_word

    code, out, _ = cli(capsys, store, "export", str(talk1), "-f", "txt", "-o", "-")
    paragraphs = [p for p in out.strip().split("\n\n") if p]
    named = [p.split(": ")[0] for p in paragraphs if p.split(": ")[0] in speakers]
    assert named[0] == paragraphs[0].split(": ")[0] and len(named) >= 6
    assert all(a != b for a, b in zip(named, named[1:]))      # a name at each change only

    # a file without speakers exports as before: no voices, no speaker fields
    noise, _ = files["noise"]
    store.save_transcript(noise, "en", [{"start": 1.0, "end": 2.0, "text": "Beep.",
                                         "words": []}])
    code, out, _ = cli(capsys, store, "export", str(noise), "-f", "vtt", "-o", "-")
    assert code == 0 and "<v " not in out and "Beep." in out
    code, out, _ = cli(capsys, store, "export", str(noise), "-f", "json", "-o", "-")
    assert "speaker" not in out


def test_a_name_given_with_the_cli_follows_the_voice_everywhere(indexed, capsys):
    store, files = indexed
    talk1, _ = files["talk1"]
    alone, _ = files["alone"]
    reader, _ = reader_and_cards(store, files)
    talk1_path, alone_path = store.media(talk1)["path"], store.media(alone)["path"]

    code, out, _ = cli(capsys, store, "speakers", "list", talk1_path, "--json")
    listed = json.loads(out)["speakers"]
    assert code == 0 and [s["label"] for s in listed] == [1, 2]
    assert all(s["seconds"] > 1 and s["turns"] >= 1 for s in listed)

    code, out, _ = cli(capsys, store, "speakers", "name", talk1_path,
                       f"Speaker {reader['label']}", "Marianne D.")
    assert code == 0 and "Marianne D." in out and "2 files" in out
    # the other file, where the same voice speaks, shows the name: in the list...
    code, out, _ = cli(capsys, store, "speakers", "list", alone_path)
    assert code == 0 and out.splitlines()[1].strip().startswith("Marianne D.")
    code, out, _ = cli(capsys, store, "speakers", "list", "--json")
    voices = {v["name"]: v for v in json.loads(out)["voices"]}
    assert voices["Marianne D."]["files"] == 2
    code, out, _ = cli(capsys, store, "speakers", "where", "marianne d.", "--json")
    assert code == 0 and {f["path"] for f in json.loads(out)["files"]} == {talk1_path,
                                                                           alone_path}
    # ... in its export ...
    code, out, _ = cli(capsys, store, "export", alone_path, "-f", "vtt", "-o", "-")
    cues = _CUE.findall(out)
    assert cues and all(text.startswith("<v Marianne D.>") for _, _, text in cues)
    # ... and in search
    word = max((re.sub(r"\W", "", w["word"]) for w in words_of(store, alone)), key=len)
    code, out, _ = cli(capsys, store, "search", word, "--mode", "text", "--json")
    hits = [h for h in json.loads(out)["hits"] if h["path"] == alone_path]
    assert code == 0 and hits and all(h["speaker"] == "Marianne D." for h in hits)
    code, out, _ = cli(capsys, store, "search", word, "--mode", "text")
    assert f"Marianne D.: " in out

    # usage and not-found errors: clear, with the CLI's exit codes
    code, _, err = cli(capsys, store, "speakers", "name", talk1_path, "Speaker 9", "X")
    assert code == 4 and "Speaker 9" in err and "Marianne D." in err
    code, _, err = cli(capsys, store, "speakers", "where", "Nobody")
    assert code == 4 and "“Marianne D.”" in err
    code, _, err = cli(capsys, store, "speakers", "name", talk1_path, "Anna")
    assert code == 2 and "Which speaker" in err
    code, _, err = cli(capsys, store, "speakers", "name", str(reader["voice_id"]), "x" * 200)
    assert code == 2 and "at most 100" in err
    code, _, err = cli(capsys, store, "speakers", "merge", "Marianne D.")
    assert code == 2 and "usage" in err
    code, out, _ = cli(capsys, store, "speakers", "list", talk1_path, "--json")
    assert "Marianne D." in {s["name"] for s in json.loads(out)["speakers"]}   # unchanged


def test_merge_and_split_from_the_cli(indexed, capsys):
    store, files = indexed
    talk1, _ = files["talk1"]
    path = store.media(talk1)["path"]
    before = store.list_speakers(talk1)
    first_turn = next(t for t in store.speaker_turns(talk1)
                      if t["speaker_id"] == before[0]["id"])
    code, out, _ = cli(capsys, store, "speakers", "split", path, "1",
                       "--at", str(first_turn["start"] + 0.2), "--json")
    new = json.loads(out)["new_speaker"]
    assert code == 0 and new["label"] == 3 and new["turns"] == 1
    code, out, _ = cli(capsys, store, "speakers", "merge", path, "1", "Speaker 3")
    assert code == 0 and "joined" in out
    assert [(s["id"], s["turns"]) for s in store.list_speakers(talk1)] == \
        [(s["id"], s["turns"]) for s in before]
    code, _, err = cli(capsys, store, "speakers", "split", path, "1", "--at", "0.01")
    assert code == 4 and "does not speak at" in err


def test_speaker_filter_keeps_the_moments_that_voice_speaks(indexed, capsys):
    store, files = indexed
    talk1, truth = files["talk1"]
    reader, cards = reader_and_cards(store, files)
    word = word_said_only_by(store, files, cards["id"])

    # the word, said by the cards speaker: found with their voice, not with the reader's
    hits = search(store, word["key"], mode="text")
    assert any(h.media_id == talk1 and abs(h.seek - word["start"]) < 0.05 for h in hits)
    assert all(h.speaker == cards["name"] for h in hits if h.media_id == talk1)
    assert search(store, f'speaker:#{reader["voice_id"]} {word["key"]}', mode="text") == []
    mine = search(store, f"{word['key']} speaker:#{cards['voice_id']}", mode="text")
    assert mine and abs(mine[0].seek - word["start"]) < 0.05
    assert {h.speaker for h in mine} == {cards["name"]}
    named = store.voice(reader["voice_id"])["name"] or "Reader"
    store.name_voice(reader["voice_id"], named)
    assert search(store, f'speaker:"{named.lower()}" {word["key"]}', mode="text") == []

    # --speaker in the CLI is the same filter
    code, out, _ = cli(capsys, store, "search", word["key"], "--speaker", named, "--json")
    assert code == 4 and json.loads(out)["hits"] == []
    code, out, _ = cli(capsys, store, "search", word["key"], "--speaker",
                       str(cards["voice_id"]), "--json")
    assert code == 0 and {h["speaker"] for h in json.loads(out)["hits"]} == {cards["name"]}

    # alone, the filter lists the voice's turns: every file it speaks in
    code, out, _ = cli(capsys, store, "search", "--speaker", named, "--json")
    listed = json.loads(out)["hits"]
    turns = [t for t in store.turns_of_voice(reader["voice_id"])]
    assert code == 0 and len(listed) == len(turns)
    assert {h["media_id"] for h in listed} == {t["media_id"] for t in turns}
    assert sorted((h["media_id"], h["start"]) for h in listed) == \
        sorted((t["media_id"], t["start"]) for t in turns)
    assert all(h["speaker"] == named and h["snippet"] for h in listed)
    assert search(store, "", filters=Filters(speaker=named), limit=2)[0].media_id != \
        search(store, "", filters=Filters(speaker=named), limit=2)[1].media_id   # one per file

    # a name no voice has: a clear message naming the voices that have one
    with pytest.raises(UnknownSpeaker, match=re.escape(f"“{named}”")):
        search(store, 'speaker:"Nobody" cards')
    code, _, err = cli(capsys, store, "search", "anything", "--speaker", "Nobody")
    assert code == 4 and "Nobody" in err and named in err
    code, _, err = cli(capsys, store, "search", 'speaker:"Nobody"')
    assert code == 4 and "No voice in the library is named “Nobody”" in err
    with pytest.raises(ValueError, match="one speaker"):
        search(store, f'speaker:"{named}" x', filters=Filters(speaker=cards["voice_id"]))


def test_the_transcript_panel_shows_names_and_renames_the_voice(qtbot, indexed, tmp_path):
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QAbstractItemView

    from app.gui import build
    from app.settings import Settings
    store, files = indexed
    talk1, truth = files["talk1"]
    alone, _ = files["alone"]
    reader, cards = reader_and_cards(store, files)
    qsettings = QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat)
    service, window = build(store.path, Settings(whisper_model="tiny.en"), qsettings)
    qtbot.addWidget(window)
    window.show()
    panel = window.transcript
    try:
        window.open_media(talk1, 0.0, path=store.media(talk1)["path"])
        qtbot.waitUntil(lambda: panel.model.rowCount() > 0 and len(panel.speakers) == 2,
                        timeout=15_000)
        names = {s["id"]: s["name"] for s in store.list_speakers(talk1)}
        rows = panel.model.segments
        assert {r["speaker"] for r in rows} == set(names.values())
        assert panel.delegate.name_width > 0
        reader_row = next(i for i, r in enumerate(rows) if r["start"] < truth[0][1])
        assert rows[reader_row]["speaker"] == names[reader["id"]]
        # each speaker keeps one colour, and the two differ
        from ui.speaker_colors import speaker_color
        assert speaker_color(reader["voice_id"]) != speaker_color(cards["voice_id"])

        menu = panel.speaker_menu_for(reader_row)
        texts = [a.text() for a in menu.actions()]
        assert texts == ["Rename speaker…", "Merge with…", "Where else does this voice speak"]
        assert [a.text() for a in menu.actions()[1].menu().actions()] == [names[cards["id"]]]

        # a double-click on the name asks for the voice's name; the service names it
        view = panel.view
        rect = panel.delegate.name_rect(view.visualRect(panel.model.index(reader_row)),
                                        view.font())
        qtbot.mouseDClick(view.viewport(), Qt.LeftButton, pos=rect.center())
        dialog = panel.rename_dialog
        assert dialog is not None and dialog.isVisible()
        assert view.state() != QAbstractItemView.EditingState   # not the line's text editor
        dialog.setTextValue("Elinor")
        dialog.accept()
        qtbot.waitUntil(lambda: store.voice(reader["voice_id"])["name"] == "Elinor",
                        timeout=10_000)
        qtbot.waitUntil(lambda: panel.model.segments[reader_row]["speaker"] == "Elinor"
                        and panel.speakers and "Elinor" in {s["name"] for s in panel.speakers},
                        timeout=10_000)
        assert {r["speaker"] for r in panel.model.segments} == {"Elinor", names[cards["id"]]}

        # the other file with that voice follows
        window.open_media(alone, 0.0, path=store.media(alone)["path"])
        qtbot.waitUntil(lambda: panel.media_id == alone and panel.model.rowCount() > 0,
                        timeout=15_000)
        assert {r["speaker"] for r in panel.model.segments} == {"Elinor"}

        # where else does this voice speak: its moments, across the library
        panel.speaker_menu_for(0).actions()[2].trigger()
        assert window.search_box.text() == 'speaker:"Elinor"'
        qtbot.waitUntil(lambda: len(window.results.model.hits) > 0, timeout=30_000)
        hits = window.results.model.hits
        assert {h["media_id"] for h in hits} == {talk1, alone}
        assert {h["speaker"] for h in hits} == {"Elinor"}
        assert "Elinor" in window.results.model.data(window.results.model.index(0, 2))
        qtbot.waitUntil(lambda: "Elinor" in [window.results.speaker_filter.itemText(i) for i
                                             in range(window.results.speaker_filter.count())],
                        timeout=10_000)

        # the speaker filter with no words lists her moments; an unknown name says so
        window.search_box.clear()
        window.search_box.flush()
        results = window.results
        results.speaker_filter.set_value("Elinor")
        qtbot.waitUntil(lambda: "of Elinor speaking" in results.summary.text(), timeout=30_000)
        assert {h["media_id"] for h in results.model.hits} == {talk1, alone}
        assert all(h["speaker"] == "Elinor" for h in results.model.hits)
        results.speaker_filter.set_value("Nobody")
        qtbot.waitUntil(lambda: "Search failed" in results.summary.text(), timeout=30_000)
        assert results.summary.text() == ("Search failed: No voice in the library is named "
                                          "“Nobody” (named voices: “Elinor”).")
        assert results.model.hits == []
    finally:
        service.shutdown()
