import html
import json
import re
import shutil
import subprocess

import pytest
import srt
import webvtt

from indexer.subtitles import FORMATS, Cue, cut_cues, render, to_json, to_srt, to_txt, to_vtt

EPS = 1e-6
MAX_CHARS, MAX_LINES, MIN_DUR, MAX_DUR, MAX_CPS = 42, 2, 1.0, 7.0, 20.0

PARAGRAPH = (
    "When we first arrived at the station, the train had already left, so we walked "
    "into town and asked for directions. Nobody seemed to know the way, but an old "
    "woman selling flowers pointed us toward the river. We followed the path for an "
    "hour, because the map was wrong and the signs had been removed years ago. "
    "Eventually we found the house! Was it worth the trouble? Absolutely, and we would "
    "do it again tomorrow if we had the chance."
)
FAST = ("Okay so basically what happened was that the server crashed at midnight and "
        "nobody noticed until the morning shift came in and saw the alerts everywhere")
CJK = "我们昨天去了北京，参观了故宫和长城。天气非常好，我们拍了很多照片，晚上还吃了烤鸭。"
NO_WORDS = ("This segment has no word timestamps at all, so the text is spread over its "
            "time span in proportion to its length, which is good enough for subtitles.")
CJK_NO_WORDS = "这是一个没有单词时间戳的中文段落所以必须按字符切分" * 4


def words_for(text, start, word_dur=0.3, gap=0.05, cjk=False):
    """Word-timed segment: Whisper-style words with leading spaces (none for CJK)."""
    if cjk:  # Whisper's CJK "words": one or two characters, punctuation attached
        pieces = re.findall(r"[^，。]{1,2}[，。]?", text)
    else:
        pieces = [" " + w for w in text.split()]
    words, t = [], start
    for p in pieces:
        d = word_dur * (len(p.strip()) / 5 if not cjk else len(p)) ** 0.5
        words.append({"start": round(t, 3), "end": round(t + d, 3), "word": p, "probability": 0.9})
        t += d + gap
    return {"start": words[0]["start"], "end": words[-1]["end"],
            "text": "".join(pieces).strip(), "language": "zh" if cjk else "en", "words": words}


def split_sentences(seg):
    """Split a word-timed segment at sentence ends, as Whisper does."""
    out, cur = [], []
    for w in seg["words"]:
        cur.append(w)
        if w["word"].rstrip().endswith((".", "?", "!")):
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return [{"start": ws[0]["start"], "end": ws[-1]["end"], "language": seg["language"],
             "text": "".join(w["word"] for w in ws).strip(), "words": ws} for ws in out]


@pytest.fixture(scope="module")
def segments():
    segs = split_sentences(words_for(PARAGRAPH, 0.5))
    t = segs[-1]["end"] + 4.0  # a long pause
    fast = words_for(FAST, t, word_dur=0.17, gap=0.02)  # ~27 characters per second
    segs.append(fast)
    t = fast["end"] + 3.0  # the fast speaker stops: cues may use the silence
    segs.append({"start": t, "end": t + 0.3, "text": "Yes.", "language": "en",
                 "words": [{"start": t, "end": t + 0.3, "word": " Yes.", "probability": 1.0}]})
    t += 2.5
    cjk = words_for(CJK, t, word_dur=0.22, gap=0.03, cjk=True)
    segs.append(cjk)
    t = cjk["end"] + 2.0
    segs.append({"start": t, "end": t + 9.0, "text": NO_WORDS, "language": "en", "words": []})
    t += 11.0
    segs.append({"start": t, "end": t + 16.0, "text": CJK_NO_WORDS, "language": "zh", "words": []})
    return segs


@pytest.fixture(scope="module")
def cues(segments):
    return cut_cues(segments)


def squash(s):
    return re.sub(r"\s+", "", s)


def test_line_rules(cues):
    assert cues
    for c in cues:
        assert 1 <= len(c.lines) <= MAX_LINES, c
        for line in c.lines:
            assert line and line == line.strip()
            assert len(line) <= MAX_CHARS, (line, len(line))


def test_no_overlaps_and_order(cues):
    for a, b in zip(cues, cues[1:]):
        assert a.start < a.end <= b.start + EPS, (a, b)
    assert all(c.end > c.start for c in cues)


def test_text_preserved_in_order(segments, cues):
    source = " ".join("".join(w["word"] for w in s["words"]) if s["words"] else s["text"]
                      for s in segments)
    # Spaced text: same words in the same order; CJK: same characters.
    assert squash(" ".join(c.text for c in cues)) == squash(source)
    latin = [w for c in cues for w in " ".join(c.lines).split() if not re.search("[\u4e00-\u9fff]", w)]
    assert latin == [w for w in source.split() if not re.search("[\u4e00-\u9fff]", w)]


def test_duration_and_cps(cues):
    for i, c in enumerate(cues):
        dur = c.end - c.start
        nxt = cues[i + 1].start if i + 1 < len(cues) else float("inf")
        fully_extended = c.end >= nxt - EPS  # the silence after it was used up
        assert dur <= MAX_DUR + EPS, c
        if dur < MIN_DUR - EPS:
            assert fully_extended, c
        cps = sum(len(l) for l in c.lines) / dur
        if cps > MAX_CPS + EPS:
            assert fully_extended, (c, cps)


def test_timing_rules_met_where_source_allows(segments, cues):
    # The relaxed speakers (paragraph, CJK, no-words text) leave room for every rule.
    fast_start = segments[-5]["start"]
    relaxed = [c for c in cues if c.end <= fast_start - 1 or c.start > segments[-3]["start"]]
    assert len(relaxed) >= 12
    for c in relaxed:
        dur = c.end - c.start
        assert MIN_DUR - EPS <= dur <= MAX_DUR + EPS, c
        assert sum(len(l) for l in c.lines) / dur <= MAX_CPS + EPS, c
    # The isolated "Yes." is stretched to the minimum duration.
    yes = next(c for c in cues if c.lines == ["Yes."])
    assert yes.end - yes.start == pytest.approx(MIN_DUR)


def test_fast_speaker_uses_following_silence(segments, cues):
    fast = segments[-5]
    fc = [c for c in cues if fast["start"] - EPS <= c.start < fast["end"]]
    assert len(fc) >= 2
    # The last cue of the burst runs on into the pause so it can be read.
    assert fc[-1].end > fast["end"] + 0.5
    assert sum(len(l) for l in fc[-1].lines) / (fc[-1].end - fc[-1].start) <= MAX_CPS + EPS
    # Cues are contiguous through the burst: every bit of time is used.
    assert all(a.end == pytest.approx(b.start) for a, b in zip(fc, fc[1:]))


def test_long_pause_splits_cues(segments, cues):
    last_para = segments[-6]
    fast = segments[-5]
    for c in cues:
        assert not (c.start < last_para["end"] and c.end > fast["start"] + EPS)


def test_breaks_prefer_punctuation_and_clauses(cues):
    para = [c for c in cues if not re.search("[\u4e00-\u9fff]", c.text)]
    ends = [l for c in para for l in c.lines]
    # A comma or sentence end is preferred over cutting mid-clause.
    assert "When we first arrived at the station," in ends
    # Never end a line on an article or preposition.
    func = {"a", "an", "the", "to", "of", "in", "on", "at", "for", "with", "from"}
    for line in ends:
        assert line.split()[-1].lower() not in func, line
    # Most cue ends are at punctuation in the punctuated paragraph.
    para_cues = [c for c in para if c.start < 40]
    at_punct = [c for c in para_cues if c.lines[-1][-1] in ".,?!;:"]
    assert len(at_punct) >= 0.7 * len(para_cues)


@pytest.mark.parametrize("text, lines", [
    ("When the rain finally stopped, the children ran outside to play",
     ["When the rain finally stopped,", "the children ran outside to play"]),
    # Off-centre comma: "...at the old / painting, you..." is better balanced, but the
    # comma wins over a mid-clause break.
    ("If you look closely at the old painting, you can see a bird",
     ["If you look closely at the old painting,", "you can see a bird"]),
    ("Cuando llegamos a la estación, el tren ya se había ido",
     ["Cuando llegamos a la estación,", "el tren ya se había ido"]),
])
def test_line_breaks_at_comma_not_mid_clause(text, lines):
    (cue,) = cut_cues([words_for(text, 0.0)])
    assert cue.lines == lines


def test_lines_balanced_and_break_before_conjunction():
    text = "The board read every proposal carefully and decided to fund three"
    (cue,) = cut_cues([words_for(text, 0.0)])
    assert cue.lines == ["The board read every proposal carefully", "and decided to fund three"]
    # Without a clause boundary the lines are balanced.
    text = "Twelve enormous grey elephants walked slowly across the dusty plain"
    (cue,) = cut_cues([words_for(text, 0.0)])
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 8


def test_cjk_split_by_characters(cues):
    cjk = [c for c in cues if re.search("[\u4e00-\u9fff]", c.text)]
    assert len(cjk) >= 3
    for c in cjk:
        for line in c.lines:
            assert " " not in line and len(line) <= MAX_CHARS
            assert line[0] not in "，。、"  # punctuation stays with its character
    assert squash("".join(c.text for c in cjk)) == CJK + CJK_NO_WORDS
    # Full-width characters count two columns: 21 CJK characters a line at most.
    assert max(len(l) for c in cjk for l in c.lines) == MAX_CHARS // 2


def test_overlong_word_is_cut():
    url = "https://example.com/" + "very/long/path/" * 5
    seg = {"start": 0.0, "end": 6.0, "text": f"see {url} now", "language": "en", "words": []}
    cs = cut_cues([seg])
    assert all(len(l) <= MAX_CHARS for c in cs for l in c.lines)
    assert squash(" ".join(c.text for c in cs)) == squash(seg["text"])


def test_overlapping_source_timestamps():
    a = words_for("alpha beta gamma delta epsilon zeta eta theta iota kappa", 0.0)
    for w in a["words"]:
        w["end"] = w["start"] + 2.0  # Whisper sometimes overlaps words
    b = words_for("lambda mu nu", 1.0)  # and segments
    cs = cut_cues([a, b])
    for x, y in zip(cs, cs[1:]):
        assert x.start < x.end <= y.start
    assert " ".join(c.text for c in cs).split() == (a["text"] + " " + b["text"]).split()


def test_cjk_single_long_word():
    text = "一二三四五六七八九十" * 10
    seg = {"start": 0.0, "end": 20.0, "text": text, "language": "zh",
           "words": [{"start": 0.0, "end": 20.0, "word": text, "probability": 0.5}]}
    cs = cut_cues([seg])
    assert "".join(squash(c.text) for c in cs) == text
    assert all(len(l) <= MAX_CHARS for c in cs for l in c.lines)
    assert all(c.end - c.start <= MAX_DUR + EPS for c in cs)


def test_words_without_leading_spaces():
    seg = words_for("one two three four", 0.0)
    for w in seg["words"]:
        w["word"] = w["word"].strip()
    (cue,) = cut_cues([seg])
    assert cue.lines == ["one two three four"]


def test_min_gap_respected(segments):
    cs = cut_cues(segments, min_gap=0.1)
    for a, b in zip(cs, cs[1:]):
        assert b.start - a.end >= 0.1 - EPS


def test_empty():
    assert cut_cues([]) == []
    assert to_srt([]) == ""
    assert to_vtt([]).startswith("WEBVTT")
    assert cut_cues([{"start": 0, "end": 1, "text": "  ", "language": None, "words": []}]) == []


def test_timestamps():
    c = [Cue(3723.4567, 6000.5, ["a"]), Cue(400000.0, 400001.9996, ["b"])]
    out = to_srt(c)
    assert "01:02:03,457 --> 01:40:00,500" in out
    assert "111:06:40,000 --> 111:06:42,000" in out
    assert "01:02:03.457 --> 01:40:00.500" in to_vtt(c)


def test_srt_parses(cues):
    text = to_srt(cues)
    parsed = list(srt.parse(text))
    assert len(parsed) == len(cues)
    for p, c in zip(parsed, cues):
        assert p.content == c.text
        assert p.start.total_seconds() == pytest.approx(c.start, abs=1e-3)
        assert p.end.total_seconds() == pytest.approx(c.end, abs=1e-3)


def seconds(stamp):
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_vtt_parses(cues):
    text = to_vtt(cues)
    assert text.startswith("WEBVTT\n\n")
    parsed = webvtt.from_string(text)
    assert len(parsed.captions) == len(cues)
    for p, c in zip(parsed.captions, cues):
        assert p.text == c.text
        assert seconds(p.start) == pytest.approx(c.start, abs=1e-3)
        assert seconds(p.end) == pytest.approx(c.end, abs=1e-3)


def test_vtt_escapes_markup():
    out = to_vtt([Cue(0, 1, ["a < b & c"])])
    assert "a &lt; b &amp; c" in out
    assert html.unescape(webvtt.from_string(out).captions[0].text) == "a < b & c"


ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg") or not shutil.which("ffprobe"),
                            reason="ffmpeg not installed")


def _run(*args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def _probe(path):
    out = _run("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name",
               "-of", "json", str(path)).stdout
    return json.loads(out)["streams"]


@ffmpeg
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_ffmpeg_accepts(tmp_path, segments, fmt):
    sub = tmp_path / f"in.{fmt}"
    sub.write_text(render(fmt, segments), encoding="utf-8")
    assert _probe(sub) == [{"codec_type": "subtitle",
                            "codec_name": "subrip" if fmt == "srt" else "webvtt"}]
    ass = tmp_path / f"out_{fmt}.ass"
    _run("ffmpeg", "-v", "error", "-y", "-i", str(sub), str(ass))
    dialogue = [l for l in ass.read_text(encoding="utf-8").splitlines() if l.startswith("Dialogue:")]
    assert len(dialogue) == len(cut_cues(segments))
    mkv = tmp_path / f"out_{fmt}.mkv"
    _run("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=size=64x64:d=30",
         "-i", str(sub), "-c:s", "srt", "-t", "30", str(mkv))
    types = [s["codec_type"] for s in _probe(mkv)]
    assert types.count("subtitle") == 1 and "video" in types


def test_to_json(segments):
    out = to_json(segments)
    assert "我们" in out and "\n  " in out  # UTF-8, not escaped; pretty-printed
    doc = json.loads(out)
    assert len(doc["segments"]) == len(segments)
    assert doc["language"] == "en"
    s0 = doc["segments"][0]
    assert s0["words"][0]["word"] == segments[0]["words"][0]["word"]
    assert set(s0["words"][0]) == {"start", "end", "word", "probability"}
    assert doc["segments"][-1]["words"] == []


def test_to_txt(segments):
    out = to_txt(segments)
    paras = out.strip().split("\n\n")
    lines = [l for l in out.splitlines() if l]
    assert len(lines) == len(segments)
    assert lines[0] == segments[0]["text"]
    assert len(paras) >= 4  # the long pauses and language changes start paragraphs
    assert to_txt([]) == ""


def test_render(segments):
    assert FORMATS == ("srt", "vtt", "json", "txt")
    for fmt in FORMATS:
        assert render(fmt, segments).strip()
    assert render("srt", segments) == to_srt(cut_cues(segments))
    assert render("SRT", segments, max_chars=30).count("\n") > render("srt", segments).count("\n")
    with pytest.raises(ValueError):
        render("docx", segments)


def test_a_subtitle_track_keeps_its_own_cues_wrapped_to_the_line_length():
    long = "This line of a subtitle track is too long to be shown on one line of the screen"
    lines = [{"start": 1.0, "end": 3.5, "text": "Short and sweet.", "source": "subtitles"},
             {"start": 3.0, "end": 8.25, "text": long, "source": "subtitles"},
             {"start": 9.0, "end": 9.5, "text": "[door creaks]", "source": "subtitles"}]
    cues = list(srt.parse(render("srt", lines)))
    # one cue per line, at the line's own times (even overlapping ones), words unchanged
    assert [(c.start.total_seconds(), c.end.total_seconds()) for c in cues] == [
        (1.0, 3.5), (3.0, 8.25), (9.0, 9.5)]
    assert [" ".join(c.content.split()) for c in cues] == [l["text"] for l in lines]
    wrapped = cues[1].content.split("\n")
    assert len(wrapped) == 2 and all(len(l) <= MAX_CHARS for l in wrapped)
    assert abs(len(wrapped[0]) - len(wrapped[1])) <= 12                   # balanced
    vtt = webvtt.from_string(render("vtt", lines)).captions
    assert [c.start for c in vtt] == ["00:00:01.000", "00:00:03.000", "00:00:09.000"]
    # a speech transcript is still cut from its words
    speech = [dict(l, source="speech") for l in lines]
    assert render("srt", speech) == to_srt(cut_cues(speech))


# ---- who speaks ----------------------------------------------------------------------------

def dialogue():
    """Anna, then Bob from the middle of a line (a turn changes inside a segment), then
    Anna again; and the turns saying so."""
    a = words_for("Good morning everyone, today we review the quarterly budget.", 0.5)
    b = words_for("Thanks Anna. I have two questions about the museum and the report.",
                  a["end"] + 0.3)
    c = words_for("Go ahead, Bob.", b["end"] + 0.8)
    line = {"start": a["start"], "end": b["end"], "language": "en",
            "text": a["text"] + " " + b["text"], "words": a["words"] + b["words"]}
    turns = [{"start": a["start"], "end": a["end"], "name": "Anna", "speaker_id": 1},
             {"start": b["start"], "end": b["end"], "name": "Bob <B&B>", "speaker_id": 2},
             {"start": c["start"], "end": c["end"], "name": "Anna", "speaker_id": 1}]
    return [line, c], turns


def test_cues_are_cut_at_each_change_of_speaker():
    segments, turns = dialogue()
    assert len({c.speaker for c in cut_cues(segments)}) == 1      # no turns: no speakers
    cues = cut_cues(segments, turns=turns)
    for c in cues:
        words = [w for seg in segments for w in seg["words"]
                 if c.start - EPS <= w["start"] and w["end"] <= c.end + EPS]
        assert words, c
        owners = {next(t["name"] for t in turns if t["start"] - EPS <= w["start"]
                       and w["end"] <= t["end"] + EPS) for w in words}
        assert owners == {c.speaker}, (c, owners)
    assert [c.speaker for c in cues][0] == "Anna" and cues[-1].speaker == "Anna"
    assert "Bob <B&B>" in {c.speaker for c in cues}
    assert squash("".join(c.text for c in cues)) == squash(
        " ".join(s["text"] for s in segments))


def test_srt_name_prefixes_fit_the_line_length():
    segments, turns = dialogue()
    cues = list(srt.parse(render("srt", segments, turns=turns, speaker_names=True)))
    for cue in cues:
        name, sep, _ = cue.content.partition(": ")
        assert sep and name in ("Anna", "Bob <B&B>")
        assert all(len(line) <= MAX_CHARS for line in cue.content.split("\n"))
    plain = list(srt.parse(render("srt", segments, turns=turns)))
    assert not any(c.content.startswith(("Anna:", "Bob")) for c in plain)


def test_vtt_cues_are_voices():
    segments, turns = dialogue()
    out = render("vtt", segments, turns=turns)
    captions = webvtt.from_string(out).captions
    assert captions and all(c.raw_text.startswith("<v ") for c in captions)
    assert {html.unescape(c.voice) for c in captions} == {"Anna", "Bob <B&B>"}
    assert "<v Bob &lt;B&amp;B&gt;>" in out
    # a subtitle track's own cues say who speaks over most of them, and are not cut
    track = [dict(s, source="subtitles", words=[]) for s in segments]
    cues = webvtt.from_string(render("vtt", track, turns=turns)).captions
    assert [html.unescape(c.voice) for c in cues] == ["Bob <B&B>", "Anna"]   # most of each


@ffmpeg
def test_ffmpeg_accepts_voices(tmp_path):
    segments, turns = dialogue()
    sub = tmp_path / "voices.vtt"
    sub.write_text(render("vtt", segments, turns=turns), encoding="utf-8")
    ass = tmp_path / "voices.ass"
    _run("ffmpeg", "-v", "error", "-y", "-i", str(sub), str(ass))
    dialogue_lines = [l for l in ass.read_text(encoding="utf-8").splitlines()
                      if l.startswith("Dialogue:")]
    assert len(dialogue_lines) == len(cut_cues(segments, turns=turns))


def test_json_and_text_say_who_speaks():
    segments, turns = dialogue()
    doc = json.loads(render("json", segments, turns=turns))
    assert doc["speakers"] == ["Anna", "Bob <B&B>"]
    first = doc["segments"][0]
    assert first["speaker"] == "Bob <B&B>"         # Bob says more of the shared line
    assert first["words"][0]["speaker"] == "Anna" and first["words"][-1]["speaker"] == "Bob <B&B>"
    assert all("speaker" not in w for s in json.loads(to_json(segments))["segments"]
               for w in s["words"])
    text = render("txt", segments, turns=turns)
    assert text.split("\n\n") == [
        "Anna: Good morning everyone, today we review the quarterly budget.",
        "Bob <B&B>: Thanks Anna. I have two questions about the museum and the report.",
        "Anna: Go ahead, Bob.\n"]
    assert render("txt", segments) == to_txt(segments)            # without turns: as before


def test_a_word_outside_every_turn_goes_to_the_nearest_within_a_second():
    from indexer.subtitles import with_speakers
    segments, turns = dialogue()
    gappy = [dict(t, end=t["end"] - 0.5) for t in turns]          # the last words left out
    spoken = with_speakers(segments, gappy)
    assert spoken[0]["words"][-1]["speaker"] == "Bob <B&B>"
    far = [{"start": 100.0, "end": 101.0, "name": "Zoe"}]
    assert {w["speaker"] for s in with_speakers(segments, far) for w in s["words"]} == {None}
