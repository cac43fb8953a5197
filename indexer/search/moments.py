"""Ranked lists fused into moments (weighted reciprocal-rank fusion), and moments made
into Hits: where each one lies, the second it plays from, its snippet and thumbnail.

A moment is placed in time by its strongest precise evidence: a strict text match,
else the meaning window (or keyframe), else a relaxed text match, else a long range
(a 60 s keyword window, a tag's span). Every timestamp is clamped into its file.

Each Hit says where the said text that matched came from (`source`, `track`): speech
recognition or a subtitle track, read from the segment its match lies on (a keyword,
from the transcript the file's keywords were taken from).

One rule gives the second a moment plays from (`Hit.seek`), for the CLI, its JSON and
the GUI alike: a said or keyword match plays from the first word of the query said
there (the word the snippet marks first), a meaning match from the segment of its
window that holds the query's words best; other matches, or a line whose word
timings are gone (corrected by the user), from the moment's start. With a speaker
filter, only the words that voice says count, and a moment plays from within its speech.
A said match's moment itself starts at the sentence of its line holding that word (a
recognised line may hold several sentences), so its start and its second agree.
"""
from __future__ import annotations

from indexer.search.fulltext import group_weights
from indexer.search.query_text import (content_groups, covered, first_said, make_snippet,
                                       near_groups, sentence_start, with_forms)
from indexer.search.sources import BY_FTS
from indexer.search.speakers import VoiceTurns
from indexer.search.types import Hit, Item, Moment
from indexer.search.vectors import window
from indexer.store import Store
from indexer.store import search_reads as reads

WINDOW_SNIPPET_TOKENS = 36
_EXACT_KINDS = ("said", "shown", "tag")
# A moment where one line (said or shown) holds every word of the query comes before
# moments that hold them spread over several items (a 30 s meaning window, a keyword
# and a line): benchmarks/README.md, "Finding the right moment"
LINE_FIRST = True
# A said match's moment starts at the sentence (of its line) holding the first query word,
# not at the line's start: a line the recogniser made of several sentences
SENTENCE_START = True
_LINE_LISTS = ("said", "shown")
# Two hits of one file starting this close are one moment (a meaning window playing from
# the line that is a hit of its own): shown once
SAME_START_S = 0.01
# A query of at most this many content words is typed as keywords: among the moments that
# do not hold every word, those where one line holds more of them (by idf) come first
# ("esistono conferenze volte": the line saying two of them before a meaning window)
COVERAGE_FIRST_WORDS = 3
# ... and of two moments whose best lines hold the same words, the one whose line holds
# more of them as typed (not only in another form) comes first
TYPED_FIRST_LINE = True
# A meaning window plays from the first of consecutive lines that together hold more of
# the query's words than any one of them (`_best_segment_start`)
ADJACENT_LINES = True
ADJACENT_MAX_LINES = 3      # ... looking back at most this many lines
ADJACENT_SPAN_S = 30.0      # ... starting at most this long before the line found
# ... and only for the words the line does not say in a near spelling either (the line's
# "ведите" is the query's "видите" misheard, not the earlier line's "Видите")
ADJACENT_NEAR = True


def fuse(lists: dict[str, list[Item]], rrf_k: float, weights: dict, relaxed_creates: bool,
         word_weights: list[float] | tuple = ()) -> list[tuple[float, Moment]]:
    """Moments scored sum_w w / (rrf_k + rank) over the lists they hold, best first.

    With the query's content words (`word_weights`: their idf, fulltext.group_weights),
    a moment whose items hold every one of them comes before the rest ("list users
    currently" said in one line outranks a line saying only "currently", however close
    its meaning); the share of the words' idf a moment holds adds weights["coverage"]
    times it to its score; and a tentative moment (Item.tentative) is kept only when it
    holds them all. Among the moments that hold every word, those where one line holds
    them all come first (LINE_FIRST)."""
    moments: list[Moment] = []
    by_media: dict[int, list[Moment]] = {}
    home: dict[int, Moment] = {}      # id(item) -> the moment it joined

    def place(it: Item, create: bool) -> None:
        for m in by_media.get(it.media_id, ()):
            if m.overlaps(it):
                m.items.append(it)
                m.tentative = m.tentative and not create
                home[id(it)] = m
                return
        if it.window is not None and id(it.window) in home:
            # a line later in a meaning window than the window's first segment: it
            # supports the window's moment (relaxed_said found it there)
            home[id(it.window)].items.append(it)
            return
        if create or it.tentative:
            m = Moment(it.media_id, it.start, it.end, [it], tentative=not create)
            moments.append(m)
            by_media.setdefault(it.media_id, []).append(m)
            home[id(it)] = m

    # Best ranks first, across lists, so the strongest hits define the moments.
    strict = sorted((it for items in lists.values() for it in items if not it.relaxed),
                    key=lambda it: (it.rank, -weights.get(it.list, 1.0)))
    for it in strict:
        place(it, True)
    for it in sorted((it for items in lists.values() for it in items if it.relaxed),
                     key=lambda it: it.rank):
        place(it, (relaxed_creates and not it.weak) or it.creates)
    words = len(word_weights)
    total_idf = float(sum(word_weights)) or 1.0
    per_coverage = weights.get("coverage", 0.0)
    scored = []
    for m in moments:
        held = m.held()
        whole = bool(words) and len(held) == words
        line = whole and LINE_FIRST and any(
            it.list in _LINE_LISTS and it.covers and len(it.covers - it.near) == words
            and it.fts is not None for it in m.items)
        if m.tentative and not whole:
            continue
        best: dict[str, int] = {}
        for it in m.items:
            best[it.list] = min(best.get(it.list, 10 ** 9), it.rank)
        score = sum(weights.get(name, 1.0) / (rrf_k + r) for name, r in best.items()
                    if name != "coverage")
        if words and held:
            score += per_coverage * sum(word_weights[g] for g in held) / total_idf
        # the most of the words one line holds, by idf, then of those the most as typed
        first = (0.0, 0.0)
        if held and not whole and words <= COVERAGE_FIRST_WORDS:
            first = max(((sum(word_weights[g] for g in it.covers) / total_idf,
                          sum(word_weights[g] for g in (it.typed or ())) / total_idf
                          if TYPED_FIRST_LINE else 0.0) for it in m.items
                         if it.list in _LINE_LISTS and it.covers and it.fts is not None),
                        default=first)
        scored.append(((whole + line, first), score, m))
    scored.sort(key=lambda wsm: (-wsm[0][0], -wsm[0][1][0], -wsm[0][1][1], -wsm[1]))
    return [(score, m) for _, score, m in scored]


def _matched_texts(store: Store, leads: list[Item]) -> dict[tuple[str, int], str]:
    """(FTS table, rowid) -> the text each full-text lead matched, one read per table."""
    by_fts: dict[str, list[int]] = {}
    for it in leads:
        if it.fts is not None:
            by_fts.setdefault(it.fts, []).append(it.rowid)
    out = {}
    for fts, ids in by_fts.items():
        src = BY_FTS[fts]
        out.update(((fts, i), text) for i, text in
                   reads.rows_text(store, src.table, src.column, ids).items())
    return out


def _frame_snippet(store: Store, media_id: int, t: float) -> str:
    tags = reads.tags_at(store, media_id, t)
    text = reads.screen_text_at(store, media_id, t)
    parts = (["seen: " + ", ".join(tags)] if tags else []) + [f"“{x}”" for x in text]
    return "; ".join(parts) or "similar frame"


def anchor(store: Store, m: Moment) -> Item:
    """The item that places a moment in time and gives its snippet: a strict text match
    (exact words, precise time), else the vector match (its whole window or frame),
    else a relaxed text match on a segment, else a long range (keyword window, tag)."""
    def order(it: Item):
        if it.kind in _EXACT_KINDS and not it.relaxed and it.list not in ("keyword", "tag"):
            tier = 0
        elif it.similarity is not None:
            tier = 1
        elif it.list not in ("keyword", "tag"):
            tier = 2
        else:
            tier = 3
        return (tier, it.rank, -(it.similarity or 0.0))
    lead = min(m.items, key=order)
    if lead.list == "similar" and lead.text is None and lead.segment_id is not None:
        w = window(store, lead.segment_id)
        if w is not None:
            lead.start, lead.end, lead.text, lead.segments = w.start, w.end, w.text, w.segments
    return lead


def seek_time(store: Store, lead: Item, query: str, start: float, end: float,
              said_words: dict[int, list], groups: tuple = ()) -> float:
    """The second a moment placed by `lead` over [start, end] plays from (the rule in
    this module's docstring), within [start, end]. `said_words` holds the timed words
    of the leads that are said segments (read for all hits at once)."""
    t = None
    if query and lead.fts == "segments_fts":
        t = first_said(said_words.get(lead.rowid, ()), query, relaxed=lead.relaxed)
    elif query and lead.fts == "keywords_fts":
        t = first_said(reads.word_times_between(store, lead.media_id, lead.start, lead.end),
                       query, relaxed=True)
    elif query and lead.list == "similar" and lead.segments:
        t = _best_segment_start(store, lead.segments, groups)
    return start if t is None else min(max(float(t), start), end)


def _best_segment_start(store: Store, segments: list, groups: tuple) -> float | None:
    """The start of the window's segments holding the query's content words best (by
    their idf, as relaxed said matches are scored), None when none holds any. With
    ADJACENT_LINES, a run of consecutive segments each holding some of the words counts
    as one when together they hold more ("composé veillez essayez": the recogniser cut
    the sentence saying them at "composé"), and the shortest such run wins a tie."""
    if not groups:
        return None
    idf = group_weights(store, groups)
    held = [(seg_start, covered(text or "", groups)) for _id, seg_start, _end, text in segments]
    best, best_start = (0.0, 0), None
    for i, (seg_start, _words) in enumerate(held):
        union: frozenset = frozenset()
        for n, (_, more) in enumerate(held[i:i + 1] if not ADJACENT_LINES else held[i:]):
            if not more:
                break                 # a line without any of the words ends the run
            union |= more
            score = (sum(idf[g] for g in union), -n)
            if score > best:
                best, best_start = score, seg_start
    return best_start


def _earlier_lines(store: Store, media_id: int, lead: Item, groups: tuple,
                   where: tuple[str, str | None] | None, text: str) -> list[tuple]:
    """The lines just before a said line holding some of the query's words that hold
    others (ADJACENT_LINES), earliest first: consecutive lines of its source and track,
    each adding a word the later ones lack, within ADJACENT_SPAN_S of it."""
    have = covered(text, groups)
    if have and ADJACENT_NEAR:
        have |= near_groups(text, groups, have)     # said here, misheard: not before
    if where is None or not have or len(have) == len(groups):
        return []
    out = []
    for row in reads.lines_before(store, media_id, lead.start, ADJACENT_MAX_LINES, *where):
        here = covered(row[3] or "", groups)
        if not here - have or lead.start - row[1] > ADJACENT_SPAN_S:
            break
        have |= here
        out.append(row)
        if len(have) == len(groups):
            break
    return out[::-1]


def _sentence_opening(words: list, start: float, seek: float) -> float | None:
    """Where the sentence of a line (its timed `words`, from `start`) holding the word at
    `seek` begins (SENTENCE_START), None when that is the line's own start."""
    opens = sentence_start(words, seek) if SENTENCE_START and words else None
    return opens if opens is not None and start <= opens <= seek else None


def _first_line_start(store: Store, line: tuple, query: str) -> tuple[float, float]:
    """(start, second to play) of a moment that begins with this line (id, start, end,
    text): the sentence of its first query word, played from that word."""
    words = reads.segments_word_times(store, [line[0]]).get(line[0], [])
    said = first_said(words, query, relaxed=True)
    seek = float(line[1]) if said is None else max(float(said), float(line[1]))
    opens = _sentence_opening(words, float(line[1]), seek)
    return (float(line[1]) if opens is None else opens), seek


def _segment_of(it: Item) -> int | None:
    """The transcript segment an item lies on: a said line, a meaning window's first."""
    return it.rowid if it.fts == "segments_fts" else it.segment_id


def _said_segment(lead: Item, m: Moment) -> int | None:
    """The transcript segment a moment's said evidence lies on: its lead's, else any of
    its items'."""
    seg = _segment_of(lead)
    return seg if seg is not None else next(
        (_segment_of(it) for it in m.items if _segment_of(it) is not None), None)


def _timed_lead(m: Moment, lead: Item, sources: dict[int, tuple]) -> Item:
    """A subtitle line leads a moment only when no speech line there matched as well:
    speech lines have word timings, so the moment plays from the word said."""
    if lead.fts != "segments_fts" or sources.get(lead.rowid, ("speech",))[0] == "speech":
        return lead
    return next((it for it in sorted(m.items, key=lambda it: it.rank)
                 if it.fts == "segments_fts" and it.relaxed == lead.relaxed
                 and sources.get(it.rowid, ("",))[0] == "speech"), lead)


def said_sources(store: Store, placed: list[tuple[float, Moment, Item]],
                 known: dict[int, tuple[str, str | None]]
                 ) -> list[tuple[str, str | None] | None]:
    """(source, track) of each placed moment's said evidence (`known`: the segments'),
    None when it has none. A keyword holds no segment: its file's indexed transcript
    gives it (read once per file)."""
    from indexer.stages.text import indexed_track
    by_media: dict[int, tuple[str, str | None] | None] = {}
    out = []
    for _, m, lead in placed:
        seg = _said_segment(lead, m)
        if seg is not None:
            out.append(known.get(seg))
        elif lead.list == "keyword" or any(it.list == "keyword" for it in m.items):
            if m.media_id not in by_media:
                media = store.media(m.media_id) or {}
                pick = indexed_track(store.transcript_tracks(m.media_id), media.get("language"))
                by_media[m.media_id] = (pick["source"], pick["track"]) if pick else None
            out.append(by_media[m.media_id])
        else:
            out.append(None)
    return out


def to_hits(store: Store, scored: list[tuple[float, Moment]], limit: int, query: str,
            turns: VoiceTurns | None = None, forms: dict | None = None) -> list[Hit]:
    """The best `limit` moments as Hits. With a speaker filter's `turns`, a moment plays
    from the first query word that voice says there, else from its first speech in it.
    A word's other `forms` (indexer.search.word_forms) are matched as the word is. A
    moment placed by a meaning window starts at the window's line that holds the
    query's words (where it plays from), so its start is the sentence that matched; one
    that starts inside a better hit of the same file (that line, found by its words) is
    left out rather than shown twice, and a line found by its words that starts where a
    better window's hit does becomes that hit (SAME_START_S)."""
    hits = []
    groups = content_groups(query, forms)
    query = with_forms(query, forms)
    anchored = [(score, m, anchor(store, m)) for score, m in scored[:limit]]
    sources = reads.segment_sources(store, [seg for _, m, _ in anchored for it in m.items
                                            if (seg := _segment_of(it)) is not None])
    placed = [(score, m, _timed_lead(m, lead, sources)) for score, m, lead in anchored]
    texts = _matched_texts(store, [lead for _, _, lead in placed])
    said_words = reads.segments_word_times(
        store, [lead.rowid for _, _, lead in placed if query and lead.fts == "segments_fts"])
    if turns is not None:
        media_of = {lead.rowid: m.media_id for _, m, lead in placed}
        said_words = {sid: [tw for tw in words if turns.holds(media_of[sid], tw[0])]
                      for sid, words in said_words.items()}
    paths = reads.media_paths_durations(store, [m.media_id for _, m, _ in placed])
    for (score, m, lead), said in zip(placed, said_sources(store, placed, sources)):
        if m.media_id not in paths:          # removed since its lists were read
            continue
        path, duration = paths[m.media_id]
        start, end = lead.start, max(lead.end, lead.start)
        vec = sorted((it for it in m.items if it.similarity is not None),
                     key=lambda it: -it.similarity)
        if duration:
            start = min(max(0.0, start), float(duration))
            end = min(max(start, end), float(duration))
        kinds = []
        for it in sorted(m.items, key=lambda it: it.rank):
            if it.kind not in kinds:
                kinds.append(it.kind)
        seg = next((it.segment_id for it in m.items if it.segment_id is not None), None)
        if seg is None and lead.fts == "segments_fts":
            seg = lead.rowid
        kf = next((it.keyframe_id for it in m.items if it.keyframe_id is not None), None)
        ranks: dict[str, int] = {}
        for it in m.items:
            ranks[it.list] = min(ranks.get(it.list, 10 ** 9), it.rank)
        seek = seek_time(store, lead, query, float(start), float(end), said_words, groups)
        earlier: list[tuple] = []   # lines just before the lead saying the query's other words
        if lead.list == "similar":
            start = seek
            if any(h.media_id == m.media_id and h.start <= start < max(h.end, h.start + 1e-6)
                   for h in hits):
                continue    # the window's line with the words is a better hit already shown
        elif lead.fts == "segments_fts":
            opens = _sentence_opening(said_words.get(lead.rowid, []), start, seek)
            if opens is not None:
                start = opens     # a line of several sentences: the one the words are in
            elif (ADJACENT_LINES and lead.relaxed and turns is None
                  and (lead.fts, lead.rowid) in texts):
                earlier = _earlier_lines(store, m.media_id, lead, groups,
                                         sources.get(lead.rowid), texts[lead.fts, lead.rowid])
                if earlier:
                    start, seek = _first_line_start(store, earlier[0], query)
        if earlier:     # the words said over this line and the ones just before it
            said_text = " ".join([r[3] for r in earlier] + [texts[lead.fts, lead.rowid]])
            snippet = make_snippet(said_text, query, relaxed=True)
        elif (lead.fts, lead.rowid) in texts:
            snippet = make_snippet(texts[lead.fts, lead.rowid], query, relaxed=lead.relaxed)
        elif lead.fts is not None:
            snippet = lead.text or ""
        elif lead.keyframe_id is not None:
            snippet = _frame_snippet(store, m.media_id, lead.start)
        else:
            snippet = make_snippet(lead.text or "", query, relaxed=True,
                                   tokens=WINDOW_SNIPPET_TOKENS)
        hit = Hit(m.media_id, path, float(start), float(end), lead.kind, snippet,
                  float(score), kinds, None, seg, kf,
                  vec[0].similarity if vec else None, ranks, seek,
                  said[0] if said else None, said[1] if said else None)
        same = next((k for k, h in enumerate(hits)
                     if h.media_id == hit.media_id and abs(h.start - hit.start) < SAME_START_S), None)
        if same is None:
            hits.append(hit)
        elif hits[same].kind == "similar" and hit.kind != "similar":
            # a meaning window playing from the line found by its words: one hit, in the
            # window's place, shown as that line (its words marked, its end)
            first = hits[same]
            hit.score, hit.similarity = first.score, first.similarity
            hit.kinds = first.kinds + [k for k in hit.kinds if k not in first.kinds]
            hit.ranks = {name: min(r, first.ranks.get(name, r)) for name, r in
                         {**first.ranks, **hit.ranks}.items()}
            hits[same] = hit
    for h in hits:
        if turns is not None:
            turns.seek_within(h)
        h.thumbnail = reads.nearest_thumbnail(store, h.media_id, h.start)
    return hits
