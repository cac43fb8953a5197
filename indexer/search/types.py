"""What search returns (Hit, FileHits), what it is given to load models with
(SearchModels), and the two inner shapes of a search: one row of a ranked list
(Item) and the moments the lists are fused into (Moment)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

MOMENT_SPAN_S = 30.0     # a hit joins a moment when their first 30 s overlap


@dataclass
class Hit:
    media_id: int
    path: str
    start: float
    end: float
    kind: str            # said, shown, tag, similar (the strongest of `kinds`)
    snippet: str
    score: float
    kinds: list = field(default_factory=list)      # every way this moment matched
    thumbnail: str | None = None                   # relative to the thumbnail folder
    segment_id: int | None = None                  # a transcript segment / window start
    keyframe_id: int | None = None
    similarity: float | None = None                # cosine of the best vector match
    ranks: dict = field(default_factory=dict)      # list name -> rank (1 = best)
    seek: float | None = None                      # the second to play (see moments.seek_time)
    source: str | None = None     # where the said text that matched came from: "speech"
                                  # (recognition) or "subtitles"; None for a match of no
                                  # said text (shown, tag, image)
    track: str | None = None      # the subtitle track's label ("movie.en.srt"); None for speech
    speaker: str | None = None    # who says it: the voice's name, else "Speaker <n>" of the
                                  # file; None for a moment of no said text or no speakers
    voice_id: int | None = None   # that speaker's voice (for "more of this voice")
    people: list = field(default_factory=list)   # who is on screen at `seek` (name, else
                                                 # "Person N"), most prominent first

    def __post_init__(self):
        if self.seek is None:
            self.seek = self.start

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FileHits:
    media_id: int
    path: str
    score: float
    hits: list


def group_by_file(hits: Sequence[Hit]) -> list[FileHits]:
    """Moments grouped per file; files ordered by their best moment, moments by time."""
    groups: dict[int, FileHits] = {}
    for h in hits:
        g = groups.get(h.media_id)
        if g is None:
            g = groups[h.media_id] = FileHits(h.media_id, h.path, h.score, [])
        g.hits.append(h)
        g.score = max(g.score, h.score)
    out = sorted(groups.values(), key=lambda g: -g.score)
    for g in out:
        g.hits.sort(key=lambda h: h.start)
    return out


@dataclass(frozen=True)
class SearchModels:
    """How a search gets the models it may need, each called only when a search needs
    it (and may load the model then): `embedder()` the text embedder for queries,
    `image_model()` the image feature model (features / features_of_file),
    `face_model()` models.faces.FaceModels (None when the face models are not
    installed: an example image is then compared whole). The app builds one per
    process from models.loading."""
    embedder: Callable[[], Any] | None = None
    image_model: Callable[[], Any] | None = None
    face_model: Callable[[], Any] | None = None


@dataclass
class Item:
    """One row of one ranked list (said, shown, tag, keyword, similar, image)."""
    list: str
    kind: str
    media_id: int
    start: float
    end: float
    rank: int = 0
    relaxed: bool = False
    rowid: int | None = None          # FTS row (for the snippet)
    fts: str | None = None
    segment_id: int | None = None
    keyframe_id: int | None = None
    similarity: float | None = None
    text: str | None = None
    creates: bool = True              # may start a moment of its own (see moments.fuse)
    segments: list | None = None      # a transcript window's (id, start, end, text), once read
    covers: frozenset | None = None   # the query's content words its text holds (indices of
                                      # query_text.content_groups); None: not looked at
    tentative: bool = False           # may start a moment that ends up holding every word
    weak: bool = False                # relaxed, one word only in another form: never starts
                                      # a moment of its own, in full-text search either
    typed: frozenset | None = None    # of `covers`, the words its text holds as typed (not
                                      # only in another form); None: not looked at
    near: frozenset = frozenset()     # of `covers`, the words held only in a near spelling
                                      # (search.FALLBACK_NEAR)
    window: "Item | None" = None      # the meaning window a relaxed said match was found in
                                      # (fulltext.relaxed_said): it supports that moment


@dataclass
class Moment:
    """Items of any lists that fall on the same stretch of one file."""
    media_id: int
    start: float
    end: float
    items: list = field(default_factory=list)
    tentative: bool = False           # started by a tentative item (Item.tentative)

    def held(self) -> frozenset:
        """The query's content words (their group indexes) its items hold."""
        return frozenset().union(*(it.covers for it in self.items if it.covers))

    def overlaps(self, it: Item) -> bool:
        if it.media_id != self.media_id:
            return False
        s, e = it.start, min(it.end, it.start + MOMENT_SPAN_S)
        return s <= min(self.end, self.start + MOMENT_SPAN_S) + 1.0 and e >= self.start - 1.0
