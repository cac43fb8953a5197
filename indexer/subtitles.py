"""Subtitle cutting and transcript export (SRT, WebVTT, JSON, plain text).

Pure Python on plain data: a segment is a mapping
``{"start", "end", "text", "language", "words": [{"start", "end", "word", "probability"}]}``,
and may say where it came from (``"source"``: "speech" or "subtitles").

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

import json
import math
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Cue", "FORMATS", "cut_cues", "line_cues", "render", "to_json", "to_srt", "to_txt",
           "to_vtt"]

FORMATS = ("srt", "vtt", "json", "txt")

# Scripts written without spaces between words. Hangul is left out: Korean uses spaces.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_CJK_RE = re.compile(f"[{_CJK}]")
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
_CUE_COST = 2.0   # per cue: favours fuller cues over many tiny ones
_BALANCE = 4.0    # weight of line-length imbalance (a comma may still beat a perfect balance)


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]

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
            or (a.lang is not None and b.lang is not None and a.lang != b.lang))


def cut_cues(segments, *, max_chars: int = 42, max_lines: int = 2,
             min_duration: float = 1.0, max_duration: float = 7.0,
             max_cps: float = 20.0, min_gap: float = 0.0) -> list[Cue]:
    """Cut subtitle cues from word-timed segments following broadcast rules.

    Lengths are display columns (a CJK character counts 2), for both ``max_chars``
    and ``max_cps``. A cue starts at its first word and ends at its last word, or
    later (into the silence before the next cue) to reach ``min_duration`` and
    ``max_cps``. Cues never cross a silence of 1.5 s or a change of language."""
    toks = _tokens(segments, max_chars)
    n = len(toks)
    if not n:
        return []
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
        (cost, ((first, last), ...)). Iterative DP, lines filled from the bottom."""
        total = width(a, b)
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
                        w = width(s, k)
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
            chars = width(i, b)
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
        start, end = toks[a].start, timing(a, b, width(a, b))
        if cues and start < cues[-1].end + min_gap:  # overlapping source timestamps
            start = cues[-1].end + min_gap
        cues.append(Cue(start, max(end, start + 1e-3), texts))
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


def line_cues(segments, *, max_chars: int = 42, max_lines: int = 2, **_ignored) -> list[Cue]:
    """One cue per subtitle line, at the line's own times, wrapped to `max_chars`."""
    cues = []
    for seg in sorted(segments, key=lambda s: float(s["start"])):
        text = re.sub(r"\s+", " ", str(seg.get("text") or "")).strip()
        if not text:
            continue
        start = float(seg["start"])
        end = max(float(seg["end"]), start + 1e-3)
        cues.append(Cue(start, end, _wrap(text, max_chars, max_lines)))
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


def to_srt(cues: list[Cue]) -> str:
    blocks = []
    for i, c in enumerate(cues, 1):
        # "-->" inside text would be read as a timing line by some parsers.
        text = "\n".join(l.replace("-->", "->") for l in c.lines)
        blocks.append(f"{i}\n{_stamp(c.start, ',')} --> {_stamp(c.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    out = ["WEBVTT\n"]
    for c in cues:
        text = "\n".join(l.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                         for l in c.lines)
        out.append(f"{_stamp(c.start, '.')} --> {_stamp(c.end, '.')}\n{text}\n")
    return "\n".join(out)


def _seg_text(seg) -> str:
    text = str(seg.get("text") or "").strip()
    if not text and seg.get("words"):
        text = "".join(str(w.get("word") or "") for w in seg["words"]).strip()
    return re.sub(r"\s+", " ", text)


def to_json(segments) -> str:
    """Whisper-like JSON: full text, language and segments with their words."""
    segs = []
    for seg in segments:
        d = {"start": seg.get("start"), "end": seg.get("end"), "text": _seg_text(seg),
             "language": seg.get("language")}
        d.update({k: v for k, v in seg.items() if k not in d and k != "words"})
        d["words"] = [{"start": w.get("start"), "end": w.get("end"), "word": w.get("word"),
                       "probability": w.get("probability")} for w in seg.get("words") or []]
        segs.append(d)
    langs = [s["language"] for s in segs if s["language"]]
    doc = {"text": " ".join(s["text"] for s in segs if s["text"]),
           "language": langs[0] if langs else None, "segments": segs}
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def to_txt(segments, paragraph_gap: float = 2.0) -> str:
    """One line per segment; a blank line (new paragraph) after a pause of
    ``paragraph_gap`` seconds or a change of language."""
    lines, prev = [], None
    for seg in segments:
        text = _seg_text(seg)
        if not text:
            continue
        if prev is not None:
            la, lb = prev.get("language"), seg.get("language")
            if float(seg["start"]) - float(prev["end"]) >= paragraph_gap or (la and lb and la != lb):
                lines.append("")
        lines.append(text)
        prev = seg
    return "\n".join(lines) + "\n" if lines else ""


def render(fmt: str, segments, **cue_options) -> str:
    """Render segments as ``fmt`` (one of FORMATS); options go to cut_cues (or, for the
    lines of a subtitle track, to line_cues)."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "srt":
        return to_srt(_cues(segments, cue_options))
    if fmt == "vtt":
        return to_vtt(_cues(segments, cue_options))
    if fmt == "json":
        return to_json(segments)
    if fmt == "txt":
        return to_txt(segments)
    raise ValueError(f"unknown subtitle format {fmt!r}; expected one of {FORMATS}")
