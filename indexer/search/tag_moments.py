"""The moments a tag holds, for a tag filter with no query words (`avindex search --tag
walking`, `--tag dog`: every breed): each span carrying the tag, the best-scored span of
each file first, then each file's next, so a short list still shows every file."""
from __future__ import annotations

from indexer.search.filters import Filters, allowed_media, tag_filter_labels
from indexer.search.types import Hit
from indexer.store import Store
from indexer.store import search_reads as reads


def tag_moments(store: Store, f: Filters, limit: int) -> list[Hit]:
    """The spans of the filter's tag in the files the other filters allow."""
    allowed = allowed_media(store, f)
    allowed = None if allowed is None else set(allowed)
    by_file: dict[int, list[tuple]] = {}
    for row in reads.tag_spans(store, tag_filter_labels(f.tag)):
        if allowed is None or row[0] in allowed:
            by_file.setdefault(row[0], []).append(row)
    for spans in by_file.values():
        spans.sort(key=lambda r: (-r[4], r[1]))
    files = sorted(by_file, key=lambda m: (-by_file[m][0][4], m))
    order = sorted(((i, fi, r) for fi, m in enumerate(files)
                    for i, r in enumerate(by_file[m])),
                   key=lambda x: (x[0], x[1]))[:max(0, int(limit))]
    paths = reads.media_paths_durations(store, [r[0] for _, _, r in order])
    hits = []
    for rank, (_, _, (media_id, start, end, label, score)) in enumerate(order, 1):
        if media_id not in paths:
            continue
        hit = Hit(media_id, paths[media_id][0], float(start), float(max(end, start)), "tag",
                  f"seen: {label}", float(score), ["tag"], ranks={"tag": rank})
        hit.thumbnail = reads.nearest_thumbnail(store, media_id, hit.start)
        hits.append(hit)
    return hits
