"""Subtitle cutting and transcript export (SRT, WebVTT, JSON, plain text).

Pure Python on plain data: a segment is a mapping
``{"start", "end", "text", "language", "words": [{"start", "end", "word", "probability"}]}``,
and may say where it came from (``"source"``: "speech" or "subtitles").

Who speaks is given as turns, ``[{"start", "end", "name"}]`` (a ``speaker_id`` tells
apart two speakers of one name): `with_speakers` gives each segment and word its
speaker, `cut_cues` cuts a cue at every change of speaker (a cue never mixes two), and
the writers show them: WebVTT as ``<v Name>``, SRT as a "Name: " prefix when asked, JSON
as "speaker" per segment and per word, plain text as "Name: " at each change.

Lines of a subtitle track (source "subtitles") are already cues, timed by whoever made
the track: exported as SRT/VTT they keep their times, one cue each, only wrapped to the
line length (`line_cues`). Speech transcripts are cut as follows.

Cues are cut from word timestamps by a dynamic programme over the word stream:
every candidate cue (a run of words) gets a cost for its line layout, the quality
of its break points, and its timing (duration and reading speed after extending
into the following silence); the cheapest sequence of cues wins. Rules that can
always be met (line length, line count, no overlaps) are hard constraints; rules
that depend on the source timing (duration, characters per second) are steep
penalties, so a cut that respects them is always preferred when one exists.
"""
from __future__ import annotations

import bisect
import json
import math
import re
import unicodedata
from dataclasses import dataclass

from indexer.unspaced_text import CJK as _CJK
from indexer.unspaced_text import CJK_RE as _CJK_RE

__all__ = ["Cue", "FORMATS", "cut_cues", "line_cues", "render", "to_json", "to_srt", "to_txt",
           "to_vtt", "with_speakers"]

FORMATS = ("srt", "vtt", "json", "txt")

# Punctuation that belongs to the preceding character (never starts a line).
_CLOSE = "、。，．！？；：」』）】》〉〕…\"'”’!?,.:;)]}»"
_PIECE_RE = re.compile(rf"\s*(?:[{_CJK}][{re.escape(_CLOSE)}]*|[^\s{_CJK}]+)")
_SENTENCE_END = tuple(".?!…。？！")
_CLAUSE_END = tuple(",;:—–，、；：")
_QUOTES = "\"'”’)]}»」』）】》"

# Break before these (clause boundaries). A few common languages; cheap to extend.
_CONJ = frozenset("""
and but or so because which that who whom whose when while although though unless
until whereas if then yet nor since
et mais ou donc car parce puisque que qui quand lorsque
y pero o porque aunque cuando pues sino que
und aber oder weil dass wenn obwohl denn sondern
e ma perché quando mentre però che
mas porque quando embora
""".split())
# Never end a line on these when avoidable (articles, prepositions, determiners...).
_FUNC = frozenset("""
a an the to of in on at by for with from into onto as and or but nor so if than
that this these those my your his her its our their i we you he she they is are was
were be not no
le la les un une des de du au aux à en dans pour par sur avec ce cette ces mon ma mes son sa ses
el los las una unos unas del al con por para su sus
der die das den dem des ein eine einen einem einer zu von mit im am auf für
il lo gli uno di da della nel con per
""".split())

_FORCE_GAP = 1.5  # s of silence that always ends a cue (text should not hang over it)
_NEAR_TURN = 1.0  # a word outside every turn is its nearest turn's within this many s
_CUE_COST = 2.0   # per cue: favours fuller cues over many tiny ones
_BALANCE = 4.0    # weight of line-length imbalance (a comma may still beat a perfect balance)


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]
    speaker: str | None = None      # who says it (the name), when the file has speakers

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class _Tok:
    text: str      # keeps its leading space, as Whisper does
    start: float
    end: float
    seg: int
    lang: str | None
    who: tuple | None = None    # (speaker key, name) when turns are given


class _Turns:
    """Who speaks when: the speaker over most of a span, found by bisection."""

    def __init__(self, turns):
        rows = sorted((float(t["start"]), float(t["end"]),
                       (t.get("speaker_id", t["name"]), str(t["name"])))
                      for t in turns or () if t.get("name"))
        self.rows = rows
        self.starts = [r[0] for r in rows]
        self.latest_end, m = [], -math.inf
        for r in rows:
            m = max(m, r[1])
            self.latest_end.append(m)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def who(self, start: float, end: float) -> tuple | None:
        """(key, name) of the speaker whose turns overlap [start, end] most; a span in no
        turn goes to the nearest one within _NEAR_TURN s, else None."""
        if not self.rows:
            return None
        hi = bisect.bisect_right(self.starts, end + _NEAR_TURN)
        lo = bisect.bisect_left(self.latest_end, start - _NEAR_TURN)
        overlap: dict[tuple, float] = {}
        near, near_d = None, _NEAR_TURN
        for s, e, who in self.rows[lo:hi]:
            ov = min(end, e) - max(start, s)
            if ov > 0 or (ov == 0 and end <= start):       # a point inside a turn counts
                overlap[who] = overlap.get(who, 0.0) + max(ov, 1e-9)
            else:
                d = max(s - end, start - e, 0.0)
                if d <= near_d:
                    near, near_d = who, d
        if overlap:
            return max(overlap, key=overlap.get)
        return near


def with_speakers(segments, turns) -> list[dict]:
    """Copies of the segments with "speaker" (the name of whoever says most of the line,
    None when no turn is near) on each segment and each of its words."""
    spk = _Turns(turns)
    out = []
    for seg in segments:
        seg = dict(seg)
        words = []
        weight: dict[tuple, float] = {}
        for w in seg.get("words") or []:
            who = spk.who(float(w["start"]), float(w["end"]))
            words.append(dict(w, speaker=who[1] if who else None))
            if who:
                weight[who] = weight.get(who, 0.0) + max(float(w["end"]) - float(w["start"]), 0.01)
        if weight:
            who = max(weight, key=weight.get)
        else:
            who = spk.who(float(seg["start"]), float(seg["end"]))
        seg["words"] = words
        seg["speaker"] = who[1] if who else None
        out.append(seg)
    return out


def _width(s: str) -> int:
    """Display columns: full-width (CJK) characters count double, which turns the
    Latin limits (42 a line, 20 cps) into the usual CJK ones (~21 a line, ~10 cps)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _is_cjk(s: str) -> bool:
    return bool(_CJK_RE.search(s))


def _spread(pieces: list[str], start: float, end: float) -> list[tuple[str, float, float]]:
    """Share [start, end] between pieces in proportion to their length."""
    weights = [max(len(p.strip()), 1) for p in pieces]
    total, t, out = sum(weights), start, []
    for p, w in zip(pieces, weights):
        nxt = t + (end - start) * w / total
        out.append((p, t, nxt))
        t = nxt
    return out


def _pieces(text: str, max_chars: int) -> list[str]:
    """Split text into word pieces: whitespace words, single CJK characters (with
    their trailing punctuation), and chunks of over-long words."""
    out = []
    for p in _PIECE_RE.findall(text):
        lead, body = p[: len(p) - len(p.lstrip())], p.lstrip()
        while _width(body) > max_chars:  # e.g. a URL: a hard cut is the only option
            k = 1
            while _width(body[:k + 1]) <= max_chars:
                k += 1
            out.append(lead + body[:k])
            lead, body = "", body[k:]
        out.append(lead + body)
    return out


def _tokens(segments, max_chars: int) -> list[_Tok]:
    toks: list[_Tok] = []
    for si, seg in enumerate(segments):
        lang = seg.get("language")
        words = [w for w in (seg.get("words") or []) if str(w.get("word") or "").strip()]
        if words:
            raw = [(re.sub(r"\s+", " ", str(w["word"])), float(w["start"]), float(w["end"]))
                   for w in words]
            # Words stored without their leading space (not Whisper's style): restore
            # the spaces, unless the script has none.
            if len(raw) > 1 and not any(t[0].isspace() for t, _, _ in raw[1:]) \
                    and not _is_cjk("".join(t for t, _, _ in raw)):
                raw = [(t if t.strip(_CLOSE) == "" else " " + t, s, e) for t, s, e in raw]
        else:
            text = re.sub(r"\s+", " ", str(seg.get("text") or "")).strip()
            if not text:
                continue
            raw = _spread(_pieces(text, max_chars),
                          float(seg["start"]), float(seg["end"]))
        for text, s, e in raw:
            e = max(e, s)
            body = text.strip()
            # Long CJK "words" become characters so they can be cut anywhere; 8 chars
            # keeps Whisper's real CJK words intact (they are much shorter).
            if _width(body) > max_chars or (len(body) > 8 and _is_cjk(body)):
                sub = _spread(_pieces(text, max_chars), s, e)
            else:
                sub = [(text, s, e)]
            for t, ss, ee in sub:
                if toks and ss < toks[-1].start:  # keep the stream monotonic
                    ss = toks[-1].start
                toks.append(_Tok(t, ss, max(ee, ss), si, lang))
    # The first word of each segment needs a space before it when joined to the
    # previous segment's last word (no effect at line starts, which are stripped).
    for a, b in zip(toks, toks[1:]):
        if a.seg != b.seg and not b.text[:1].isspace() and not _is_cjk(b.text[:1] + a.text[-1:]):
            b.text = " " + b.text
    return toks


def _word(t: _Tok) -> str:
    return t.text.strip().strip(_CLOSE + "\"'“‘(¿¡").lower()


def _break_cost(toks: list[_Tok], k: int) -> float:
    """Cost of ending a line (or cue) after toks[k]. Lower is a better place."""
    if k + 1 >= len(toks):
        return 0.0
    a, b = toks[k], toks[k + 1]
    at, bt = a.text.strip(), b.text.strip()
    tail = at.rstrip(_QUOTES)
    if bt.strip(_CLOSE) == "":
        cost = 20.0        # a line must not start with punctuation
    elif tail.endswith(_SENTENCE_END):
        cost = 0.0
    elif tail.endswith(_CLAUSE_END):
        cost = 1.0
    elif not b.text[:1].isspace() and not (_is_cjk(at[-1:]) or _is_cjk(bt[:1])):
        cost = 10.0        # inside a word (an over-long word cut in chunks)
    elif _word(b) in _CONJ:
        cost = 2.0
    elif _word(a) in _FUNC:
        cost = 8.0
    else:
        cost = 4.0
    if a.seg != b.seg:     # Whisper segment boundaries are usually phrase ends
        cost = min(cost, 1.0)
    # A pause is a natural break.
    return cost - 2.0 * min(max(b.start - a.end, 0.0), 1.0)


def _forced(a: _Tok, b: _Tok) -> bool:
    return (b.start - a.end >= _FORCE_GAP
            or (a.lang is not None and b.lang is not None and a.lang != b.lang)
            or a.who != b.who)


def _prefix(name: str | None) -> str:
    return f"{name}: " if name else ""


def cut_cues(segments, *, max_chars: int = 42, max_lines: int = 2,
             min_duration: float = 1.0, max_duration: float = 7.0,
             max_cps: float = 20.0, min_gap: float = 0.0, turns=None,
             name_prefixes: bool = False) -> list[Cue]:
    """Cut subtitle cues from word-timed segments following broadcast rules.

    Lengths are display columns (a CJK character counts 2), for both ``max_chars``
    and ``max_cps``. A cue starts at its first word and ends at its last word, or
    later (into the silence before the next cue) to reach ``min_duration`` and
    ``max_cps``. Cues never cross a silence of 1.5 s or a change of language.

    With ``turns`` (who speaks when, see the module docstring) cues never cross a
    change of speaker either, and each says its speaker; with ``name_prefixes`` its
    first line leaves room for the "Name: " that to_srt(speaker_names=True) writes."""
    toks = _tokens(segments, max_chars)
    n = len(toks)
    if not n:
        return []
    spk = _Turns(turns)
    if spk:
        for t in toks:
            t.who = spk.who(t.start, t.end)
    pw = [_width(_prefix(t.who[1] if t.who else None)) if name_prefixes else 0
          for t in toks]
    cum = [0]
    for t in toks:
        cum.append(cum[-1] + _width(t.text))
    lead = [len(t.text) - len(t.text.lstrip()) for t in toks]
    trail = [len(t.text) - len(t.text.rstrip()) for t in toks]
    brk = [_break_cost(toks, k) for k in range(n)]
    ends = [0]  # ends[k]: sentence ends among toks[0..k-1]
    for t in toks:
        ends.append(ends[-1] + t.text.strip().rstrip(_QUOTES).endswith(_SENTENCE_END))
    forced = [k + 1 < n and _forced(toks[k], toks[k + 1]) for k in range(n)]

    def width(a: int, b: int) -> int:  # displayed length of toks[a..b] on one line
        return cum[b + 1] - cum[a] - lead[a] - trail[b]

    bal = _BALANCE / max_chars

    def layout(a: int, b: int):
        """Cheapest split of toks[a..b] into the fewest lines that fit, or None:
        (cost, ((first, last), ...)). Iterative DP, lines filled from the bottom. The
        first line holds the cue's "Name: " prefix too, when there is one."""
        total = width(a, b) + pw[a]
        if total <= max_chars:
            return 0.0, ((a, b),)
        for nl in range(2, max_lines + 1):
            if total > nl * max_chars + nl - 1:
                continue
            target = total / nl

            def line_cost(s: int, e: int, w: int) -> float:
                # A sentence ending mid-line reads worse than one ending a line.
                return bal * abs(w - target) + 2.0 * (ends[e] - ends[s])

            rest = {}  # rest[s]: best layout of toks[s..b] in the lines still to fill
            for s in range(b, a, -1):
                w = width(s, b)
                if w > max_chars:
                    break
                rest[s] = (line_cost(s, b, w), ((s, b),))
            for left in range(2, nl + 1):
                nxt = {}
                for s in ([a] if left == nl else range(a + 1, b + 1)):
                    for k in range(s, b):
                        w = width(s, k) + (pw[a] if s == a else 0)
                        if w > max_chars:
                            break
                        r = rest.get(k + 1)
                        if r is not None:
                            c = r[0] + brk[k] + line_cost(s, k, w)
                            if s not in nxt or c < nxt[s][0]:
                                nxt[s] = (c, ((s, k),) + r[1])
                rest = nxt
            if a in rest:
                return rest[a]
        return None

    def timing(a: int, b: int, chars: int):
        """Display end for toks[a..b]: speech end, extended into the following
        silence for min duration / reading speed, never into the next cue."""
        start = toks[a].start
        limit = toks[b + 1].start - min_gap if b + 1 < n else math.inf
        want = max(toks[b].end, start + min_duration, start + chars / max_cps)
        return min(want, limit, start + max_duration)

    def cost(a: int, b: int, lay, chars: int) -> float:
        c = _CUE_COST + lay[0] + 1.5 * brk[b]
        start = toks[a].start
        dur = max(timing(a, b, chars) - start, 1e-3)
        speech = toks[b].end - start
        if speech > max_duration:
            c += 50 + 20 * (speech - max_duration)
        if dur < min_duration - 1e-9:
            c += 10 * (min_duration - dur)
        if chars / dur > max_cps + 1e-9:  # near-hard: try every other cut first
            c += 10 + 3 * (chars / dur - max_cps)
        return c

    INF = math.inf
    best_cost = [0.0] + [INF] * n
    back: list[tuple[int, tuple] | None] = [None] * (n + 1)
    for j in range(1, n + 1):  # a cue covering toks[i..j-1]
        b = j - 1
        for i in range(b, -1, -1):
            if i < b and (forced[i] or toks[b].end - toks[i].start > max_duration
                          or width(i, b) > max_lines * max_chars + max_lines - 1):
                break
            lay = layout(i, b)
            if lay is None and i == b:  # a single unsplittable token: show it anyway
                lay = (50.0, ((b, b),))
            if lay is None or best_cost[i] == INF:
                continue
            chars = width(i, b) + pw[i]
            c = best_cost[i] + cost(i, b, lay, chars)
            if c < best_cost[j]:
                best_cost[j], back[j] = c, (i, lay[1])

    spans = []
    j = n
    while j > 0:
        i, lines = back[j]
        spans.append((i, j - 1, lines))
        j = i
    spans.reverse()

    cues: list[Cue] = []
    for a, b, lines in spans:
        texts = ["".join(t.text for t in toks[s:e + 1]).strip() for s, e in lines]
        start, end = toks[a].start, timing(a, b, width(a, b) + pw[a])
        if cues and start < cues[-1].end + min_gap:  # overlapping source timestamps
            start = cues[-1].end + min_gap
        cues.append(Cue(start, max(end, start + 1e-3), texts,
                        toks[a].who[1] if toks[a].who else None))
    return cues


def _wrap(text: str, max_chars: int, max_lines: int) -> list[str]:
    """A line's words in as few display lines of at most `max_chars` as fit (more than
    `max_lines` only when the text needs them), the lines as even as the words allow."""
    pieces = _pieces(text, max_chars)
    words = [p.strip() for p in pieces]
    total = _width("".join(pieces).strip())
    if total <= max_chars:
        return ["".join(pieces).strip()]
    n = max(2, min(max_lines, -(-total // max_chars)))
    while True:
        target = total / n
        lines, cur = [], ""
        for p, w in zip(pieces, words):
            joined = (cur + p) if cur else w
            if cur and (_width(joined) > max_chars or (len(lines) < n - 1 and
                        _width(joined) - target > target - _width(cur))):
                lines.append(cur)
                cur = w
            else:
                cur = joined
        lines.append(cur)
        if len(lines) <= n and all(_width(x) <= max_chars for x in lines):
            return lines
        n += 1


def line_cues(segments, *, max_chars: int = 42, max_lines: int = 2, turns=None,
              name_prefixes: bool = False, **_ignored) -> list[Cue]:
    """One cue per subtitle line, at the line's own times, wrapped to `max_chars`. With
    `turns`, each cue says who speaks over most of it (a track's own cues are kept as
    they are, not cut at a change of speaker)."""
    spk = _Turns(turns)
    cues = []
    for seg in sorted(segments, key=lambda s: float(s["start"])):
        text = re.sub(r"\s+", " ", str(seg.get("text") or "")).strip()
        if not text:
            continue
        start = float(seg["start"])
        end = max(float(seg["end"]), start + 1e-3)
        who = spk.who(start, end)
        name = who[1] if who else None
        lines = _wrap((_prefix(name) if name_prefixes else "") + text, max_chars, max_lines)
        if name_prefixes and name:       # the prefix is written by to_srt
            lines[0] = lines[0][len(_prefix(name)):]
        cues.append(Cue(start, end, lines, name))
    return cues


def _cues(segments, cue_options) -> list[Cue]:
    segments = list(segments)
    if segments and all(s.get("source") == "subtitles" for s in segments):
        return line_cues(segments, **cue_options)
    return cut_cues(segments, **cue_options)


# ---------------------------------------------------------------- writers

def _stamp(t: float, sep: str) -> str:
    ms = max(int(round(t * 1000)), 0)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(cues: list[Cue], speaker_names: bool = False) -> str:
    """SubRip; with `speaker_names`, a cue's first line starts with "Name: "."""
    blocks = []
    for i, c in enumerate(cues, 1):
        lines = list(c.lines)
        if speaker_names and c.speaker and lines:
            lines[0] = _prefix(c.speaker) + lines[0]
        # "-->" inside text would be read as a timing line by some parsers.
        text = "\n".join(l.replace("-->", "->") for l in lines)
        blocks.append(f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: list[Cue]) -> str:
    """WebVTT; a cue with a speaker is a voice span, ``<v Name>text``."""
    out = ["WEBVTT\n"]
    for c in cues:
        text = "\n".join(_vtt_escape(l) for l in c.lines)
        if c.speaker:
            # the annotation ends at ">" and may not hold a line break
            text = f"<v {_vtt_escape(' '.join(c.speaker.split()))}>{text}"
        out.append(f"{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n{text}\n")
    return "\n".join(out)


def _seg_text(seg) -> str:
    text = str(seg.get("text") or "").strip()
    if not text and seg.get("words"):
        text = "".join(str(w.get("word") or "") for w in seg["words"]).strip()
    return re.sub(r"\s+", " ", text)


def to_json(segments) -> str:
    """Whisper-like JSON: full text, language and segments with their words. Segments
    given their speakers (with_speakers) carry "speaker" on each segment and word, and
    the document lists the speakers in the order they first speak."""
    segs = []
    for seg in segments:
        d = {"start": seg.get("start"), "end": seg.get("end"), "text": _seg_text(seg),
             "language": seg.get("language")}
        d.update({k: v for k, v in seg.items() if k not in d and k != "words"})
        d["words"] = []
        for w in seg.get("words") or []:
            word = {"start": w.get("start"), "end": w.get("end"), "word": w.get("word"),
                    "probability": w.get("probability")}
            if "speaker" in w:
                word["speaker"] = w["speaker"]
            d["words"].append(word)
        segs.append(d)
    langs = [s["language"] for s in segs if s["language"]]
    doc = {"text": " ".join(s["text"] for s in segs if s["text"]),
           "language": langs[0] if langs else None}
    if any("speaker" in s for s in segs):
        doc["speakers"] = _speakers_in_order(segs)
    doc["segments"] = segs
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def _speakers_in_order(segs) -> list[str]:
    """The speakers' names in the order they first speak (by their words when a line has
    timed words, else by the line)."""
    first: dict[str, float] = {}
    for s in segs:
        said = [(w.get("speaker"), w.get("start")) for w in s["words"]] or [
            (s.get("speaker"), s.get("start"))]
        for who, t in said:
            if who and t is not None:
                first[who] = min(first.get(who, math.inf), float(t))
    return sorted(first, key=first.get)


def _join_words(words) -> str:
    text = "".join(str(w.get("word") or "") for w in words)
    if len(words) > 1 and not any(str(w.get("word") or "")[:1].isspace() for w in words[1:]) \
            and not _is_cjk(text):
        text = " ".join(str(w.get("word") or "").strip() for w in words)
    return re.sub(r"\s+", " ", text).strip()


def _speaker_runs(seg) -> list[tuple[str | None, str]]:
    """(speaker, text) runs of a segment: one run, unless its words say two or more
    people speak in it (then the words of each run, in order)."""
    words = [w for w in seg.get("words") or [] if str(w.get("word") or "").strip()]
    if len({w.get("speaker") for w in words}) <= 1:
        return [(seg.get("speaker"), _seg_text(seg))]
    runs: list[tuple[str | None, list]] = []
    for w in words:
        if runs and runs[-1][0] == w.get("speaker"):
            runs[-1][1].append(w)
        else:
            runs.append((w.get("speaker"), [w]))
    return [(who, _join_words(ws)) for who, ws in runs]


def to_txt(segments, paragraph_gap: float = 2.0) -> str:
    """One line per segment; a blank line (new paragraph) after a pause of
    ``paragraph_gap`` seconds or a change of language. Segments given their speakers
    (with_speakers) also start a paragraph at each change of speaker, with "Name: "
    (a line two people speak in is split between them)."""
    lines, prev, speaker = [], None, None
    for seg in segments:
        if not _seg_text(seg):
            continue
        la, lb = (prev or {}).get("language"), seg.get("language")
        new_paragraph = prev is not None and (
            float(seg["start"]) - float(prev["end"]) >= paragraph_gap or bool(la and lb and la != lb))
        named = "speaker" in seg
        for who, text in (_speaker_runs(seg) if named else [(None, _seg_text(seg))]):
            if not text:
                continue
            turn = named and who != speaker
            if lines and (turn or new_paragraph):
                lines.append("")
            lines.append(_prefix(who) + text if turn else text)
            speaker = who if named else speaker
            new_paragraph = False
        prev = seg
    return "\n".join(lines) + "\n" if lines else ""


def render(fmt: str, segments, *, turns=None, speaker_names: bool = False,
           **cue_options) -> str:
    """Render segments as ``fmt`` (one of FORMATS); options go to cut_cues (or, for the
    lines of a subtitle track, to line_cues). `turns` (who speaks when) puts the
    speakers in: cues cut at each change of speaker, WebVTT voices, JSON "speaker"
    fields, text "Name: " lines; `speaker_names` adds "Name: " to SRT cues too."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"unknown subtitle format {fmt!r}; expected one of {FORMATS}")
    segments = list(segments)
    if turns:
        segments = with_speakers(segments, turns)
        cue_options = dict(cue_options, turns=turns)
    if fmt == "srt":
        return to_srt(_cues(segments, dict(cue_options, name_prefixes=speaker_names)),
                      speaker_names)
    if fmt == "vtt":
        return to_vtt(_cues(segments, cue_options))
    if fmt == "json":
        return to_json(segments)
    return to_txt(segments)
