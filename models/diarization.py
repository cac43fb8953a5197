"""Who spoke when: speaker turns from speech regions, GE2E window embeddings and
clustering, with boundaries on word timings. Pure functions over arrays and an audio
path; no DB, no Qt.

    speech regions      the transcript's words (merged across short gaps), and the VAD's
                        speech where the transcript is silent (a language it skipped, a
                        mumble it dropped); without a transcript, the VAD's alone
    -> windows          WINDOW_S long, every HOP_S, inside the regions
    -> embeddings       models.speaker_encoder; one decode of the file, CHUNK_S at a time,
                        feeds both the VAD and the windows (scan), so memory stays flat
    -> clusters         spectral clustering of the cosine affinity, the count from the
                        eigengap (models.speaker_clustering), within min/max speakers;
                        groups whose centroids are MERGE_COS alike join (one voice found
                        as two), then those with less than MIN_SPEAKER_S of speech join
                        their nearest; at most MAX_ITEMS items, so memory stays flat;
                        where two speakers' centroids are UNSURE_COS alike (the count
                        hangs on them), the windows in between (FINE_HOP_S) are embedded
                        by a second decode and the file is clustered again
    -> word speakers    each word takes the vote of the windows over it; a run shorter
                        than MIN_RUN_S between two runs of one speaker takes theirs
    -> turns            runs of words of one speaker (a pause over TURN_GAP_S starts a new
                        turn): a turn starts at a word's start and ends at a word's end,
                        so it never splits a word

Speakers are numbered in the order they first speak. Each gets a centroid (the mean of
its windows' embeddings) that the library matches against known voices with
VOICE_MATCH_THRESHOLD. The thresholds were tuned on the benchmark's dev split
(benchmarks/speakers.py, benchmarks/README.md "Speakers").
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from . import audio_stream
from .speaker_clustering import spectral_labels
from .speaker_encoder import FRAMES_PER_S, PARTIAL_FRAMES, SAMPLE_RATE

WINDOW_S = PARTIAL_FRAMES / FRAMES_PER_S   # 1.6 s: what the encoder was trained on
HOP_S = 1.6                 # windows side by side: half the cost of 0.8 for a little DER (dev)
FINE_HOP_S = 0.8            # where the count is unsure, the windows in between are added
UNSURE_COS = 0.80           # ... that is, where two speakers' centroids are this alike (dev)
REGION_GAP_S = 0.5          # words closer than this are one stretch of speech
MIN_SPEECH_S = 1.0          # less speech than this in a file: no speakers
CLUSTER_METHOD = "spectral" # eigengap count (dev DER 6.3 %) over average linkage (9.1 %)
CENTER = False              # the file's mean taken away first: worse on dev at hop 1.6
CLUSTER_THRESHOLD = 0.40    # "ahc" only: average-linkage cosine distance kept apart
MERGE_COS = 0.825           # groups whose centroids are this alike are one voice (dev)
COUNT = "eigengap"          # how spectral picks k >= 2; "silhouette" lost on dev
OVER_K = 0                  # at least this many spectral groups before the merge (lost: off)
P_MAX_FRAC = 0.33           # spectral tries neighbour counts up to this share of the windows
GAP_TOLERANCE = 1.0         # the largest k whose eigengap is this near the widest (no dev gain)
MERGE_RULE = "cos"          # "cos": MERGE_COS; "separation" (MERGE_SEPARATION) lost on dev
MERGE_SEPARATION = 1.0      # centroid distance over the groups' mean spread: one voice below
SPLIT_SEPARATION = 0.0      # a group whose 2-means halves are this far apart splits (lost: off)
REFINE_PASSES = 0           # passes giving each window to its nearest group (no dev gain)
MIN_SPEAKER_S = 2.0         # a cluster with less speech joins its nearest one
MIN_RUN_S = 0.3             # a shorter run of words between one speaker's runs is theirs
TURN_GAP_S = 1.5            # a longer pause between two words of one speaker ends a turn
VOICE_MATCH_THRESHOLD = 0.875 # cosine of two files' speaker centroids for "the same voice"
MAX_ITEMS = 500             # clustering holds items² matrices: longer files pool windows
CHUNK_S = 120.0             # audio decoded and embedded this many seconds at a time
EMBED_BATCH = 64            # windows per encoder call (front end and LSTM)
SETTLE_S = 1.0              # speech this far behind the decoded audio cannot change any more
GAP_CHECK_S = 1.0           # the VAD looks for speech where the transcript is silent this long
PIECE_S = 0.4               # speech without words is placed in pieces of about this length
# tighter than speech recognition's (models.asr.VAD_OPTIONS): a pause between two
# speakers must stay a pause
VAD_OPTIONS = dict(min_silence_duration_ms=300, speech_pad_ms=60)


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: int                       # index into Diarization.speakers
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Speaker:
    index: int                         # 0 is "Speaker 1", the first to speak
    centroid: np.ndarray = field(compare=False, repr=False)
    seconds: float                     # speech time in its turns
    windows: int                       # embedding windows behind the centroid


@dataclass
class Diarization:
    speakers: list[Speaker]
    turns: list[Turn]
    word_speakers: list[int] | None = None   # per input word, when words were given
    windows: int = 0
    speech_s: float = 0.0

    @property
    def count(self) -> int:
        return len(self.speakers)


# ------------------------------------------------------------ speech regions ---
def merge_spans(spans: Iterable[tuple[float, float]], gap: float = REGION_GAP_S
                ) -> list[tuple[float, float]]:
    """Sorted spans with those closer than `gap` joined; empty ones dropped."""
    out: list[list[float]] = []
    for s, e in sorted((float(s), float(e)) for s, e in spans):
        if e <= s:
            continue
        if out and s - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def plan_windows(regions: Sequence[tuple[float, float]], window_s: float = WINDOW_S,
                 hop_s: float = HOP_S) -> np.ndarray:
    """(n, 2) start/end of the embedding windows: every `hop_s` inside each region, the
    last one ending at the region's end; a region shorter than a window gets one window
    centred on it (starting no earlier than 0)."""
    out: list[tuple[float, float]] = []
    for s, e in regions:
        length = e - s
        if length <= window_s:
            start = max(0.0, (s + e - window_s) / 2)
            out.append((start, start + window_s))
            continue
        n = int(np.ceil((length - window_s) / hop_s - 1e-9)) + 1
        starts = s + np.arange(n) * hop_s
        starts[-1] = e - window_s
        out.extend((float(a), float(a) + window_s) for a in starts)
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


# ---------------------------------------------------------------- embedding ---
def embed_windows(path: str | os.PathLike, windows: np.ndarray, embed: Callable,
                  *, check: Callable[[], None] = lambda: None,
                  progress: Callable[[float], None] = lambda f: None,
                  chunk_s: float = CHUNK_S) -> np.ndarray:
    """(n, d) embeddings of `windows` (sorted by start) of the file's first audio
    stream. The audio is decoded CHUNK_S at a time with a tail carried over, so a window
    across two chunks is whole and memory stays flat in the file's length. `embed` maps
    (samples, window starts in samples, frames) to (m, d) vectors (SpeakerEncoder.embed_at,
    CamPlusEncoder.embed_at).
    A window past the end of the audio is zero-padded."""
    n = len(windows)
    if n == 0:
        return np.zeros((0, 256), np.float32)
    out = None                     # allocated at the first batch: the encoder's own width
    frames = int(round((windows[0, 1] - windows[0, 0]) * FRAMES_PER_S))
    keep = int(np.ceil(float(np.max(windows[:, 1] - windows[:, 0])) * SAMPLE_RATE)) + 1
    tail = np.zeros(0, np.float32)
    tail_start = 0
    nxt = 0
    parts = audio_stream.windows(audio_stream.decode_blocks(path), chunk_s)

    def embed_ready(buf: np.ndarray, buf_start: int, final: bool) -> int:
        nonlocal nxt, out
        end = buf_start + len(buf)
        first = nxt
        while nxt < n:
            a = int(round(windows[nxt, 0] * SAMPLE_RATE))
            if not final and a + frames * (SAMPLE_RATE // FRAMES_PER_S) > end:
                break
            nxt += 1
        for i in range(first, nxt, EMBED_BATCH):
            idx = np.arange(i, min(i + EMBED_BATCH, nxt))
            starts = np.maximum(0, np.round(windows[idx, 0] * SAMPLE_RATE).astype(np.int64)
                                - buf_start)
            vecs = embed(buf, starts, frames)
            if out is None:
                out = np.zeros((n, vecs.shape[1]), np.float32)
            out[idx] = vecs
            check()
            progress((idx[-1] + 1) / n)
        return nxt

    try:
        for offset, samples in parts:
            check()
            start = int(round(offset * SAMPLE_RATE))
            if len(tail) and tail_start + len(tail) == start:
                buf, buf_start = np.concatenate([tail, samples]), tail_start
            else:
                buf, buf_start = samples, start
            embed_ready(buf, buf_start, final=False)
            if nxt >= n:
                break
            # keep what a window not yet embedded may still need
            first_needed = int(round(windows[nxt, 0] * SAMPLE_RATE))
            cut = max(len(buf) - keep, min(len(buf), max(0, first_needed - buf_start)))
            tail, tail_start = buf[cut:].copy(), buf_start + cut
        else:
            if nxt < n:
                embed_ready(tail, tail_start, final=True)
    finally:
        parts.close()
    return out


# ---------------------------------------------------------------- clustering ---
def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _pool(emb: np.ndarray, max_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items for clustering: each window, or (past `max_items`) runs of consecutive
    windows averaged. Returns (item vectors, item sizes, window -> item)."""
    n = len(emb)
    group = max(1, int(np.ceil(n / max_items)))
    owner = np.arange(n) // group
    m = int(owner[-1]) + 1 if n else 0
    sums = np.zeros((m, emb.shape[1]), np.float64)
    np.add.at(sums, owner, emb)
    sizes = np.bincount(owner, minlength=m).astype(np.float64)
    return _unit(sums), sizes, owner


def average_linkage(vectors: np.ndarray, sizes: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """The full merge sequence of average-linkage clustering on cosine distance:
    [(kept item, merged item, distance)], n - 1 merges, cheapest first. O(n²) memory;
    per merge O(n) work (each row keeps its nearest neighbour)."""
    n = len(vectors)
    if n < 2:
        return []
    v = _unit(vectors)
    d = (1.0 - v @ v.T).astype(np.float64)
    np.fill_diagonal(d, np.inf)
    size = np.ones(n) if sizes is None else np.asarray(sizes, dtype=np.float64).copy()
    alive = np.ones(n, bool)
    nn = np.argmin(d, axis=1)
    nd = d[np.arange(n), nn]
    merges = []
    for _ in range(n - 1):
        i = int(np.argmin(np.where(alive, nd, np.inf)))
        j = int(nn[i])
        dist = float(d[i, j])
        merges.append((i, j, dist))
        # Lance-Williams for average linkage: the new row is the size-weighted mean
        row = (size[i] * d[i] + size[j] * d[j]) / (size[i] + size[j])
        row[i] = np.inf
        size[i] += size[j]
        alive[j] = False
        d[j, :] = np.inf
        d[:, j] = np.inf
        row[j] = np.inf
        row[~alive] = np.inf
        d[i, :] = row
        d[:, i] = row
        # rows whose nearest was i or j look again; others may now be nearest to i
        stale = alive & ((nn == i) | (nn == j))
        stale[i] = True
        for k in np.flatnonzero(stale):
            nn[k] = int(np.argmin(d[k]))
            nd[k] = d[k, nn[k]]
        closer = alive & (row < nd)
        nn[closer] = i
        nd[closer] = row[closer]
        nd[j] = np.inf
    return merges


def cut(merges: Sequence[tuple[int, int, float]], n: int, *, threshold: float,
        min_clusters: int | None = None, max_clusters: int | None = None) -> np.ndarray:
    """Cluster labels (0..k-1) after applying the merges cheaper than `threshold`, then
    more or fewer so that min_clusters <= k <= max_clusters."""
    if n == 0:
        return np.zeros(0, int)
    applied = sum(1 for _, _, dist in merges if dist <= threshold)
    k = n - applied
    lo = max(1, min(min_clusters or 1, n))
    hi = max(lo, min(max_clusters or n, n))
    k = min(max(k, lo), hi)
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in merges[: n - k]:
        parent[root(j)] = root(i)
    roots = np.array([root(x) for x in range(n)])
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two groups of unit vectors are for their spread: the cosine distance
    of their centroids over the mean distance of each group's vectors to its own centroid
    (a voice cut in two gives a small value; two voices in a narrow channel, whose
    centroids are close but whose windows are tight, a large one)."""
    ca, cb = _unit(a.mean(axis=0)), _unit(b.mean(axis=0))
    spread = (float(np.mean(1.0 - a @ ca)) + float(np.mean(1.0 - b @ cb))) / 2
    return (1.0 - float(ca @ cb)) / max(spread, 1e-6)


def _split_bimodal(emb: np.ndarray, labels: np.ndarray, secs: np.ndarray, min_s: float,
                   at: float, max_k: int | None) -> np.ndarray:
    """Each group whose windows fall into two halves (2-means) at least `at` apart by
    `separation`, each with `min_s` of speech, is split in two (once)."""
    from .speaker_clustering import kmeans
    labels = labels.copy()
    for k in np.unique(labels):
        if max_k and len(np.unique(labels)) >= max_k:
            break
        idx = np.flatnonzero(labels == k)
        if secs[idx].sum() < 2 * min_s or len(idx) < 4:
            continue
        half = kmeans(emb[idx], 2)
        if len(np.unique(half)) < 2 or min(secs[idx[half == h]].sum() for h in (0, 1)) < min_s:
            continue
        if separation(emb[idx[half == 0]], emb[idx[half == 1]]) >= at:
            labels[idx[half == 1]] = labels.max() + 1
    return labels


def cluster(embeddings: np.ndarray, *, seconds: np.ndarray | None = None,
            method: str = CLUSTER_METHOD, center: bool = CENTER,
            threshold: float = CLUSTER_THRESHOLD, merge_cos: float = MERGE_COS,
            count: str = COUNT, over_k: int = OVER_K, p_max_frac: float = P_MAX_FRAC,
            gap_tolerance: float = GAP_TOLERANCE, merge_rule: str = MERGE_RULE,
            merge_separation: float = MERGE_SEPARATION, split_separation: float = SPLIT_SEPARATION,
            refine: int = REFINE_PASSES, min_speakers: int | None = None,
            max_speakers: int | None = None, min_speaker_s: float = MIN_SPEAKER_S,
            max_items: int = MAX_ITEMS) -> np.ndarray:
    """A speaker label (0..k-1) per window embedding.

    With `center`, the file's mean vector is taken away first (what every window shares:
    the channel, the room), so cosine compares what differs between its voices. Then
    "spectral" (models.speaker_clustering: the count from the eigengap) or "ahc"
    (average linkage cut at `threshold`) groups at most `max_items` items (longer files
    pool neighbouring windows); `refine` passes give every window to its nearest group
    centroid. Groups whose centroids (of the raw vectors) are at least `merge_cos`
    alike are one voice (or, with merge_rule "separation", less than `merge_separation`
    apart). `seconds`: the speech each window stands for; a group below `min_speaker_s`
    joins the nearest other, unless fewer than `min_speakers` would be left. `count`,
    `over_k`, `p_max_frac`, `gap_tolerance`: models.speaker_clustering.spectral_labels;
    `split_separation` > 0 splits bimodal groups last (benchmark levers, mostly off)."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, int)
    emb = _unit(embeddings)
    x = _unit(emb - emb.mean(axis=0)) if center and n > 1 else emb
    items, sizes, owner = _pool(x, max_items)
    if method == "spectral":
        labels = spectral_labels(items, min_k=max(1, min_speakers or 1),
                                 max_k=max_speakers, count=count, over_k=over_k,
                                 p_max_frac=p_max_frac, gap_tolerance=gap_tolerance)[owner]
    else:
        merges = average_linkage(items, sizes)
        labels = cut(merges, len(items), threshold=threshold, min_clusters=min_speakers,
                     max_clusters=max_speakers)[owner]
    # pooled items: each window then goes to its nearest group, so turns keep their edges
    for _ in range(max(refine, 1 if len(items) < n else 0)):
        ks = np.unique(labels)
        if len(ks) < 2:
            break
        cents = _unit(np.stack([x[labels == k].mean(axis=0) for k in ks]))
        new = ks[np.argmax(x @ cents.T, axis=1)]
        if (new == labels).all():
            break
        labels = new
    secs = np.ones(n) * HOP_S if seconds is None else np.asarray(seconds, dtype=np.float64)
    floor = max(1, min_speakers or 1)
    while True:          # one voice found as two: the closest pair of groups joins
        ks = np.unique(labels)
        if len(ks) <= floor:
            break
        if merge_rule == "separation":
            sim = np.full((len(ks), len(ks)), -np.inf)
            for a, b in zip(*np.triu_indices(len(ks), 1)):
                sim[a, b] = -separation(emb[labels == ks[a]], emb[labels == ks[b]])
            limit = -merge_separation
        else:
            cents = _unit(np.stack([emb[labels == k].mean(axis=0) for k in ks]))
            sim = cents @ cents.T
            np.fill_diagonal(sim, -np.inf)
            limit = merge_cos
        a, b = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[a, b] < limit:
            break
        labels[labels == ks[b]] = ks[a]
    while True:
        ks = np.unique(labels)
        if len(ks) <= floor:
            break
        totals = np.array([secs[labels == k].sum() for k in ks])
        small = int(np.argmin(totals))
        if totals[small] >= min_speaker_s:
            break
        cents = _unit(np.stack([emb[labels == k].mean(axis=0) for k in ks]))
        sim = cents @ cents[small]
        sim[small] = -np.inf
        labels[labels == ks[small]] = ks[int(np.argmax(sim))]
    if split_separation > 0:
        labels = _split_bimodal(emb, labels, secs, min_speaker_s, split_separation, max_speakers)
    _, labels = np.unique(labels, return_inverse=True)
    return labels


# ------------------------------------------------------------- word speakers ---
def word_votes(words: np.ndarray, windows: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(n_words, k) votes: each window votes for its label on the words it overlaps,
    weighted by the overlap and by how near the word is to the window's middle (a
    window's embedding speaks most for its centre). A word no window overlaps takes the
    nearest window's label."""
    votes = np.zeros((len(words), k))
    if not len(words) or not len(windows):
        return votes
    order = np.argsort(windows[:, 0])
    win, lab = windows[order], labels[order]
    half = (win[:, 1] - win[:, 0]) / 2
    mid = win[:, 0] + half
    max_len = float(np.max(win[:, 1] - win[:, 0]))
    for i, (ws, we) in enumerate(words):
        lo = np.searchsorted(win[:, 0], ws - max_len, side="left")
        hi = np.searchsorted(win[:, 0], we, side="right")
        for j in range(lo, hi):
            overlap = min(we, win[j, 1]) - max(ws, win[j, 0])
            if overlap <= 0:
                continue
            centre = 1.0 - min(1.0, abs((ws + we) / 2 - mid[j]) / half[j])
            votes[i, lab[j]] += overlap * (0.25 + centre)
        if not votes[i].any():
            j = int(np.argmin(np.abs(mid - (ws + we) / 2)))
            votes[i, lab[j]] = 1e-6
    return votes


def smooth_runs(words: np.ndarray, labels: np.ndarray, min_run_s: float = MIN_RUN_S) -> np.ndarray:
    """A run of words shorter than `min_run_s` (first start to last end) between two
    runs of one other speaker is given to that speaker; repeated until none is left."""
    labels = np.asarray(labels).copy()
    changed = True
    while changed and len(labels):
        changed = False
        bounds = np.flatnonzero(np.diff(labels)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(labels)]])
        for r in range(1, len(starts) - 1):
            a, b = starts[r], ends[r]
            if labels[starts[r - 1]] != labels[starts[r + 1]]:
                continue
            if words[b - 1, 1] - words[a, 0] < min_run_s:
                labels[a:b] = labels[starts[r - 1]]
                changed = True
                break
    return labels


# -------------------------------------------------------------------- turns ---
def _renumber(labels: np.ndarray, first_time: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Labels renumbered so the first to speak is 0; returns (labels, old of new)."""
    present = list(np.unique(labels))
    present.sort(key=lambda k: float(first_time[labels == k].min()))
    mapping = {old: new for new, old in enumerate(present)}
    return np.array([mapping[x] for x in labels], dtype=int), present


def _turn_embedding(windows: np.ndarray, labels: np.ndarray, emb: np.ndarray,
                    start: float, end: float, speaker: int) -> np.ndarray | None:
    mids = windows.mean(axis=1)
    inside = (mids >= start) & (mids <= end) & (labels == speaker)
    if not inside.any():
        return None
    return _unit(emb[inside].mean(axis=0))


def diarize_embeddings(windows: np.ndarray, embeddings: np.ndarray, *,
                       words: np.ndarray | None = None,
                       regions: Sequence[tuple[float, float]] = (),
                       min_speakers: int | None = None, max_speakers: int | None = None,
                       threshold: float = CLUSTER_THRESHOLD, min_speaker_s: float = MIN_SPEAKER_S,
                       min_run_s: float = MIN_RUN_S, turn_gap_s: float = TURN_GAP_S,
                       hop_s: float = HOP_S, **clustering) -> Diarization:
    """Turns from window embeddings: on the words' timings when `words` ((n, 2)
    start/end, by start) are given, else on the speech `regions`, cut between windows."""
    n = len(windows)
    speech_s = (float(sum(e - s for s, e in merge_spans(map(tuple, words), 0.0)))
                if words is not None and len(words) else float(sum(e - s for s, e in regions)))
    if n == 0:
        return Diarization([], [], [] if words is not None else None, 0, speech_s)
    secs = np.minimum(windows[:, 1] - windows[:, 0], hop_s)
    labels = cluster(embeddings, seconds=secs, threshold=threshold, min_speakers=min_speakers,
                     max_speakers=max_speakers, min_speaker_s=min_speaker_s, **clustering)
    k = int(labels.max()) + 1
    emb = _unit(embeddings)
    spans: list[tuple[float, float, int]] = []
    word_labels = None
    if words is not None and len(words):
        words = np.asarray(words, dtype=np.float64).reshape(-1, 2)
        word_labels = np.argmax(word_votes(words, windows, labels, k), axis=1)
        word_labels = smooth_runs(words, word_labels, min_run_s)
        # keep window labels consistent with the words they stand for
        start = 0
        for i in range(1, len(words) + 1):
            if (i == len(words) or word_labels[i] != word_labels[start]
                    or words[i, 0] - words[i - 1, 1] > turn_gap_s):
                spans.append((float(words[start, 0]), float(words[i - 1, 1]),
                              int(word_labels[start])))
                start = i
    else:
        mids = windows.mean(axis=1)
        for s, e in regions:
            inside = np.flatnonzero((mids >= s - 1e-6) & (mids <= e + 1e-6))
            if not len(inside):
                inside = np.array([int(np.argmin(np.abs(mids - (s + e) / 2)))])
            inside = inside[np.argsort(mids[inside])]
            cur_start, cur = s, int(labels[inside[0]])
            for a, b in zip(inside[:-1], inside[1:]):
                if labels[b] != cur:
                    edge = min(e, max(cur_start, (mids[a] + mids[b]) / 2))
                    spans.append((cur_start, edge, cur))
                    cur_start, cur = edge, int(labels[b])
            spans.append((cur_start, e, cur))
        spans = [sp for sp in spans if sp[1] > sp[0]]
    if not spans:
        return Diarization([], [], None if word_labels is None else [], n, speech_s)
    span_labels = np.array([sp[2] for sp in spans])
    first = np.array([sp[0] for sp in spans])
    new_labels, old_of_new = _renumber(span_labels, first)
    speakers = []
    for new, old in enumerate(old_of_new):
        mask = labels == old
        centroid = _unit(emb[mask].mean(axis=0)) if mask.any() else _unit(emb.mean(axis=0))
        seconds = float(sum(e - s for (s, e, _), lab in zip(spans, new_labels) if lab == new))
        speakers.append(Speaker(new, centroid, seconds, int(mask.sum())))
    turns = [Turn(s, e, int(new), _turn_embedding(windows, labels, emb, s, e, old))
             for (s, e, old), new in zip(spans, new_labels)]
    words_out = None
    if word_labels is not None:
        remap = {old: new for new, old in enumerate(old_of_new)}
        words_out = [remap[int(x)] for x in word_labels]
    return Diarization(speakers, turns, words_out, n, speech_s)


def uncovered(spans: Sequence[tuple[float, float]], end: float, min_gap: float = GAP_CHECK_S
              ) -> list[tuple[float, float]]:
    """The stretches of [0, end] outside `spans` that are at least `min_gap` long."""
    out, t = [], 0.0
    for s, e in merge_spans(spans, 0.0):
        if s - t >= min_gap:
            out.append((t, s))
        t = max(t, e)
    if end - t >= min_gap:
        out.append((t, end))
    return out


def find_speech(path: str | os.PathLike, where: Sequence[tuple[float, float]] | None = None, *,
                check: Callable[[], None] = lambda: None) -> list[tuple[float, float]]:
    """Speech (silero VAD, the one speech recognition uses, with tighter pauses and
    padding so turns are not bridged) in the stretches `where` of the file, or all of it
    (None). Decoded CHUNK_S at a time."""
    spans = None if where is None else merge_spans(where, 0.0)
    if spans is not None and not spans:
        return []
    out: list[tuple[float, float]] = []
    parts = audio_stream.windows(audio_stream.decode_blocks(path), CHUNK_S)
    try:
        for offset, samples in parts:
            check()
            out.extend(_vad_chunk(offset, samples, spans))
            if spans is not None and offset + len(samples) / SAMPLE_RATE >= spans[-1][1]:
                break
    finally:
        parts.close()
    return out


def _vad_chunk(offset: float, samples: np.ndarray, spans: list[tuple[float, float]] | None
               ) -> list[tuple[float, float]]:
    """Speech in the parts of `spans` (None: all) inside one decoded chunk."""
    from faster_whisper.vad import VadOptions

    from .silero_vad import speech_timestamps
    options = VadOptions(**VAD_OPTIONS)
    end = offset + len(samples) / SAMPLE_RATE
    todo = [(offset, end)] if spans is None else [
        (max(s, offset), min(e, end)) for s, e in spans if s < end and e > offset]
    out = []
    for s, e in todo:
        piece = samples[int((s - offset) * SAMPLE_RATE): int((e - offset) * SAMPLE_RATE)]
        if len(piece) < SAMPLE_RATE // 4:
            continue
        for ts in speech_timestamps(piece, options):
            out.append((s + ts["start"] / SAMPLE_RATE, s + ts["end"] / SAMPLE_RATE))
    return out


def _pieces(regions: Sequence[tuple[float, float]], words: np.ndarray,
            piece_s: float = PIECE_S) -> np.ndarray:
    """Stand-in words for speech no word covers: each such stretch cut in pieces of about
    `piece_s`, so turns there are placed like turns over words."""
    out = []
    for s, e in uncovered_parts(regions, words):
        n = max(1, int(round((e - s) / piece_s)))
        edges = np.linspace(s, e, n + 1)
        out.extend(zip(edges[:-1], edges[1:]))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def uncovered_parts(regions: Sequence[tuple[float, float]], words: np.ndarray, *,
                    word_spans: list[tuple[float, float]] | None = None
                    ) -> list[tuple[float, float]]:
    """The parts of `regions` (merged) that no word overlaps, at least 0.2 s long.
    `word_spans`: the words already merged (merge_spans(words, 0.0)), when at hand."""
    if word_spans is None:
        word_spans = merge_spans(map(tuple, words), 0.0) if len(words) else []
    ends = np.array([we for _, we in word_spans])
    out = []
    for s, e in merge_spans(regions, 0.0):
        t = s
        for ws, we in word_spans[int(np.searchsorted(ends, s, side="right")):]:
            if ws >= e:
                break
            if ws - t >= 0.2:
                out.append((t, ws))
            t = max(t, we)
        if e - t >= 0.2:
            out.append((t, e))
    return out


def scan(path: str | os.PathLike, embed: Callable, words: np.ndarray,
         gaps: Sequence[tuple[float, float]] | None, *, found: Sequence[tuple[float, float]] = (),
         hop_s: float = HOP_S, duration: float = 0.0, chunk_s: float = CHUNK_S,
         check: Callable[[], None] = lambda: None,
         progress: Callable[[float], None] = lambda f: None
         ) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
    """One decode of the file for both passes: the VAD over `gaps` (None: everywhere),
    and the embedding windows over the speech that makes (the `words` plus the parts of
    the speech found, and of `found`, that no word covers, merged as diarize merges them).
    The windows are the ones plan_windows gives for the whole file's speech; each is
    planned once nothing decoded later can change it (speech more than SETTLE_S behind
    the decoded audio: a later chunk's speech starts at its edge, and a part under 0.2 s
    there may yet grow) and embedded while its audio is still held, so memory stays
    flat. Returns (the speech found, windows (n, 2), embeddings (n, 256))."""
    spans = None if gaps is None else merge_spans(gaps, 0.0)
    word_spans = merge_spans(map(tuple, words), 0.0) if len(words) else []
    word_ends = np.array([e for _, e in word_spans])
    found = list(found)
    windows: list[tuple[float, float]] = []
    vectors: list[np.ndarray] = []
    # speech ending by `base` is in regions whose windows are all planned: each chunk
    # looks only at what comes after, so the work per chunk does not grow with the file
    base = -np.inf
    planned = 0       # windows already planned in the first region not closed
    embedded = 0
    buf, buf_start = np.zeros(0, np.float32), 0
    total = duration or audio_stream.probe_duration(path)

    def plan(frontier: float) -> list[tuple[float, float]]:
        """Plans the windows that can no longer change; returns the regions not closed."""
        nonlocal base, planned
        later = word_spans[int(np.searchsorted(word_ends, base, side="right")):]
        fill = uncovered_parts([(max(f0, base), f1) for f0, f1 in found if f1 > base], words,
                               word_spans=later)
        regions = merge_spans(later + fill, REGION_GAP_S)
        settled = frontier - SETTLE_S
        while regions and regions[0][0] < settled:
            s, e = regions[0]
            ahead = plan_windows([(s, e)], WINDOW_S, hop_s)
            if e >= settled:         # still open: every window but the last is known
                if e - s > WINDOW_S:
                    windows.extend(map(tuple, ahead[planned:len(ahead) - 1]))
                    planned = max(planned, len(ahead) - 1)
                break
            windows.extend(map(tuple, ahead[planned:]))   # closed: its last window too
            planned = 0
            regions.pop(0)
            base = e
        return regions

    def embed_planned(final: bool) -> None:
        """Embeds the planned windows whose audio has been decoded (all, when final)."""
        nonlocal embedded
        ready = len(windows)
        if not final:      # the transcript's words may plan windows past the decoded audio
            end = (buf_start + len(buf)) / SAMPLE_RATE
            ready = embedded
            while ready < len(windows) and windows[ready][1] <= end:
                ready += 1
        while embedded < ready:
            batch = np.asarray(windows[embedded: min(ready, embedded + EMBED_BATCH)])
            starts = np.round(batch[:, 0] * SAMPLE_RATE).astype(np.int64) - buf_start
            vectors.append(embed(buf, np.maximum(starts, 0), PARTIAL_FRAMES))
            embedded += len(batch)
            check()

    def keep_from(frontier: float, regions: list[tuple[float, float]]) -> float:
        """The earliest time a window not yet planned may need audio from."""
        earliest = frontier - SETTLE_S - WINDOW_S
        if embedded < len(windows):
            earliest = min(earliest, windows[embedded][0])
        if regions and regions[0][0] < frontier:
            s, e = regions[0]
            earliest = min(earliest, s + planned * hop_s if planned else min(s, (s + e - WINDOW_S) / 2))
        return max(0.0, earliest - WINDOW_S)

    parts = audio_stream.windows(audio_stream.decode_blocks(path), chunk_s)
    try:
        for offset, samples in parts:
            check()
            if spans is None or spans:
                found.extend(_vad_chunk(offset, samples, spans))
            start = int(round(offset * SAMPLE_RATE))
            if len(buf) and buf_start + len(buf) == start:
                buf = np.concatenate([buf, samples])
            else:
                buf, buf_start = samples, start
            end = offset + len(samples) / SAMPLE_RATE
            open_regions = plan(end)
            embed_planned(final=False)
            cut = min(len(buf), max(0, int(keep_from(end, open_regions) * SAMPLE_RATE) - buf_start))
            buf, buf_start = buf[cut:].copy(), buf_start + cut
            if total:
                progress(min(1.0, end / total))
        plan(np.inf)
        embed_planned(final=True)
    finally:
        parts.close()
    out = np.concatenate(vectors) if vectors else np.zeros((0, 256), np.float32)
    return found, np.asarray(windows, dtype=np.float64).reshape(-1, 2), out


def closest_speakers(res: Diarization) -> float:
    """The highest centroid cosine between two of a diarization's speakers (-1 if < 2)."""
    if len(res.speakers) < 2:
        return -1.0
    c = np.stack([sp.centroid for sp in res.speakers])
    sim = c @ c.T
    np.fill_diagonal(sim, -1.0)
    return float(sim.max())


def _with_fine_windows(path, speech, windows: np.ndarray, emb: np.ndarray, embed: Callable,
                       check: Callable[[], None]) -> tuple[np.ndarray, np.ndarray]:
    """The windows of FINE_HOP_S over `speech` with their embeddings: those already
    embedded (the HOP_S grid is part of it) kept, the others embedded now."""
    fine = plan_windows(speech, WINDOW_S, FINE_HOP_S)
    have = np.round(windows[:, 0] * 1000).astype(np.int64)
    new = fine[~np.isin(np.round(fine[:, 0] * 1000).astype(np.int64), have)]
    if not len(new):
        return windows, emb
    both_w = np.concatenate([windows, new])
    both_e = np.concatenate([emb, embed_windows(path, new, embed, check=check)])
    order = np.argsort(both_w[:, 0], kind="stable")
    return both_w[order], both_e[order]


def diarize(path: str | os.PathLike, embed: Callable, *,
            words: Sequence[tuple[float, float]] | None = None,
            covered: Sequence[tuple[float, float]] | None = None,
            duration: float | None = None,
            regions: Sequence[tuple[float, float]] | None = None,
            min_speakers: int | None = None, max_speakers: int | None = None,
            check: Callable[[], None] = lambda: None,
            progress: Callable[[float], None] = lambda f: None, **tuning) -> Diarization:
    """Speaker turns of a file. Speech is where the `words` ((start, end) seconds, a
    transcript's, by start) are, plus what the VAD finds where the transcript says
    nothing: outside the `covered` spans (its lines) over at least GAP_CHECK_S, up to
    `duration`; or, with covered None, the given `regions` (found by the VAD when None
    too). Less than MIN_SPEECH_S of speech gives no speakers. `embed`:
    SpeakerEncoder.embed_at. Word speakers are given for `words` in their order."""
    word_arr = np.asarray([(float(s), float(max(e, s))) for s, e in (words or ())],
                          dtype=np.float64).reshape(-1, 2)
    duration = float(duration) if duration else audio_stream.probe_duration(path)
    if covered is not None:
        gaps = uncovered(list(covered) + [tuple(w) for w in word_arr], duration)
    elif regions is None and not len(word_arr):
        gaps = None
    else:
        gaps = []
    hop = tuning.pop("hop_s", HOP_S)
    unsure_cos = tuning.pop("unsure_cos", UNSURE_COS)
    # one decode: the VAD where the transcript is silent, and the windows' audio
    found, windows, emb = scan(path, embed, word_arr, gaps, found=list(regions or ()), hop_s=hop,
                               duration=duration, check=check, progress=progress)
    fill = _pieces(found, word_arr)
    units = np.concatenate([word_arr, fill]) if len(fill) else word_arr
    order = np.argsort(units[:, 0], kind="stable")
    units = units[order]
    speech = merge_spans(map(tuple, units), REGION_GAP_S)
    speech_s = float(sum(e - s for s, e in merge_spans(map(tuple, units), 0.0)))
    if speech_s < MIN_SPEECH_S:
        return Diarization([], [], [] if words is not None else None, 0, speech_s)
    res = diarize_embeddings(windows, emb, words=units, regions=speech,
                             min_speakers=min_speakers, max_speakers=max_speakers,
                             hop_s=hop, **tuning)
    if hop > FINE_HOP_S and closest_speakers(res) >= unsure_cos:
        # two voices nearly one: the windows in between (a second decode) settle the count
        windows, emb = _with_fine_windows(path, speech, windows, emb, embed, check)
        res = diarize_embeddings(windows, emb, words=units, regions=speech,
                                 min_speakers=min_speakers, max_speakers=max_speakers,
                                 hop_s=FINE_HOP_S, **tuning)
    if words is not None and res.word_speakers is not None:
        per_unit = np.empty(len(units), int)
        per_unit[order] = res.word_speakers
        res.word_speakers = [int(x) for x in per_unit[: len(word_arr)]]
    else:
        res.word_speakers = None
    res.speech_s = speech_s
    return res
