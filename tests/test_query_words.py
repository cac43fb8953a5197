"""Queries as people type them, on the search test library (tests/test_search.py's `lib`):
a word in another of its forms, every word of a query ahead of some of them, words that
are only together on one shot (a tag and another tag), a tag with no query words, and
the second a meaning match starts at."""
from __future__ import annotations

import pytest

from indexer.search import Filters, search
from indexer.search.types import Item
from indexer.store import Store
from tests.test_search import embedder, index_transcript, lib  # noqa: F401 (fixtures)


def test_a_word_is_found_in_its_other_forms(lib):
    st = lib["store"]
    # "stirring" is never said ("you stir until it's absorbed"); "perturbé" neither
    # ("la grève des cheminots va fortement perturber le trafic")
    hits = search(st, "stirring", mode="text")
    assert hits and hits[0].path == "/lib/kitchen/risotto.mp4" and "[stir]" in hits[0].snippet
    hits = search(st, "grève perturbé", mode="text")
    assert hits and hits[0].path == "/lib/voyage/greve.mp4"
    assert "[perturber]" in hits[0].snippet and "[grève]" in hits[0].snippet
    # the time is the sentence's, and the second played is the form said
    pid, start, end = next(s for s in lib["spans"][hits[0].media_id] if s[0] == "p32")
    assert start <= hits[0].start <= hits[0].seek < end
    # a short word or a stopword is matched as typed
    assert search(st, "sto", mode="text") == []


def test_every_word_of_a_query_comes_before_some_of_them():
    from indexer.search.moments import fuse
    from indexer.search.sources import RRF_K, WEIGHTS
    # "list users currently": file 1 says every word in one line, found third by its
    # words and not at all by meaning; file 2's line says "Currently" only, and its
    # window is the best meaning match
    lists = {
        "said": [Item("said", "said", 2, 5.0, 6.0, rank=1, relaxed=True, covers=frozenset({2})),
                 Item("said", "said", 1, 30.0, 34.0, rank=3, covers=frozenset({0, 1, 2}))],
        "similar": [Item("similar", "similar", 2, 0.0, 20.0, rank=1, similarity=0.6,
                         covers=frozenset({2}))],
    }
    ranked = [m.media_id for _, m in fuse(lists, RRF_K, WEIGHTS, False, (1.0, 1.0, 1.0))]
    assert ranked == [1, 2]
    # by score alone (no query words to hold), the meaning match leads
    assert [m.media_id for _, m in fuse(lists, RRF_K, WEIGHTS, False)] == [2, 1]


@pytest.fixture(scope="module")
def shots(tmp_path_factory, embedder):
    """A library with a said passage and shots tagged "walking" or "person", one shot
    both (each word is on too many shots to be a rare word, which is specific enough to
    make a match alone)."""
    store = Store(tmp_path_factory.mktemp("shots") / "lib.db")
    mid = store.add_media("/footage/street.mp4", "fp-street", 1000, 0)
    store.save_probe(mid, {"duration": 120.0, "container": "mp4", "streams": [],
                           "kind": "video"}, [])
    index_transcript(store, mid, ["p01"], "en", embedder)
    walking = {40.0: 0.7, 80.0: 0.9, 95.0: 0.6, 105.0: 0.5, 115.0: 0.4}
    kfs = [{"time": t, "shot": i, "thumbnail": f"{mid}/{i:04d}.jpg", "kind": "video"}
           for i, t in enumerate(walking)]
    tags = [{"start": t, "end": t + 5.0, "label": "person", "source": "people", "score": 0.8}
            for t in (10.0, 20.0, 40.0, 60.0)]
    tags += [{"start": t, "end": t + 5.0, "label": "walking", "source": "motion", "score": p}
             for t, p in walking.items()]
    tags.append({"start": 5.0, "end": 8.0, "label": "golden retriever", "source": "imagenet",
                 "score": 0.6})
    store.save_visual(mid, kfs, tags, [], None)
    yield store
    store.close()


def test_words_found_on_one_shot_together(shots, embedder):
    hits = search(shots, "person walking", embedder=embedder)
    assert [(h.kind, h.start) for h in hits] == [("tag", 40.0)], hits
    # one of the words alone on a shot, or a word nothing holds, makes no match
    assert search(shots, "walking giraffe", embedder=embedder) == []


def test_a_tag_alone_lists_where_it_is_seen(shots):
    hits = search(shots, "", filters=Filters(tag="Walking"))
    assert [h.start for h in hits] == [80.0, 40.0, 95.0, 105.0, 115.0]
    assert all(h.kind == "tag" and h.seek == h.start for h in hits)
    assert hits[0].snippet == "seen: walking"
    assert search(shots, "", filters=Filters(tag="giraffe")) == []
    hits = search(shots, "", filters=Filters(tag="dog"))       # an everyday word: the breeds
    assert [(h.start, h.snippet) for h in hits] == [(5.0, "seen: golden retriever")]


def test_everyday_words_find_what_is_seen(shots, embedder):
    hits = search(shots, "dogs", embedder=embedder)        # a breed is a dog
    assert [(h.kind, h.start) for h in hits] == [("tag", 5.0)], hits
    assert hits[0].snippet == "[golden retriever]"
    hits = search(shots, "people walking", embedder=embedder)     # "people": a person
    assert [(h.kind, h.start) for h in hits] == [("tag", 40.0)], hits


def test_a_face_on_screen_is_a_person(shots, embedder):
    # a close-up: the faces stage saw a face at 100-104 s that the people detector (whole
    # bodies) did not tag; "people" finds it, "people walking" finds it beside "walking"
    import numpy as np
    mid = shots.db.execute("SELECT id FROM media").fetchone()[0]
    face = {"start": 100.0, "end": 104.0, "time": 101.0, "x": 0.3, "y": 0.2, "w": 0.4,
            "h": 0.5, "score": 0.9, "sightings": 5, "thumbnail": None}
    shots.save_faces(mid, [face], np.full((1, 128), 0.1, np.float32))
    try:
        hits = search(shots, "people", embedder=embedder, limit=10)
        assert 100.0 in [h.start for h in hits] and 40.0 in [h.start for h in hits], hits
        hits = search(shots, "people walking", embedder=embedder)   # a shot walking beside it
        assert len(hits) == 2 and hits[1].start - 5.0 <= 100.0 <= hits[1].end + 1.0, hits
    finally:
        shots.save_faces(mid, [], [])


def test_a_word_with_other_forms_before_another_word_is_a_strict_match(lib):
    from indexer.search.fulltext import fts_lists
    from indexer.search.word_forms import query_forms
    st = lib["store"]
    query = "perturbé grève"            # the first word's forms make a bracketed group
    forms = query_forms(st, query)
    assert forms.get("perturbe")         # "perturber" is said, "perturbé" is not
    said = fts_lists(st, query, 10, None, hybrid=True, forms=forms)["said"]
    greve = next(m["id"] for m in st.all_media() if m["path"] == "/lib/voyage/greve.mp4")
    assert said[0].media_id == greve and not said[0].relaxed   # every word, one line


def test_one_line_holding_every_word_comes_before_words_spread_over_a_window():
    from indexer.search import moments
    from indexer.search.sources import RRF_K, WEIGHTS
    # file 1: a meaning window whose lines hold one query word each (best by meaning);
    # file 2: one line saying both words
    lists = {
        "said": [Item("said", "said", 1, 3.0, 5.0, rank=1, relaxed=True, covers=frozenset({0}),
                      fts="segments_fts", rowid=11),
                 Item("said", "said", 1, 9.0, 11.0, rank=2, relaxed=True,
                      covers=frozenset({1}), fts="segments_fts", rowid=12),
                 Item("said", "said", 2, 40.0, 43.0, rank=3, covers=frozenset({0, 1}),
                      fts="segments_fts", rowid=21)],
        "similar": [Item("similar", "similar", 1, 0.0, 20.0, rank=1, similarity=0.7,
                         covers=frozenset({0, 1}))],
    }
    ranked = [m.media_id for _, m in moments.fuse(lists, RRF_K, WEIGHTS, False, (1.0, 1.0))]
    assert ranked == [2, 1]
    moments.LINE_FIRST = False
    try:       # both hold every word: by score alone the window leads
        assert [m.media_id for _, m in moments.fuse(lists, RRF_K, WEIGHTS, False,
                                                    (1.0, 1.0))] == [1, 2]
    finally:
        moments.LINE_FIRST = True


def test_a_line_holding_more_of_a_short_querys_words_comes_first():
    from indexer.search import moments
    from indexer.search.sources import RRF_K, WEIGHTS
    # "esistono conferenze volte", "volte" never said: file 1's meaning window is the best
    # meaning match and holds two words spread over its lines; file 2 says both in one line
    window = Item("similar", "similar", 1, 44.0, 46.0, rank=1, similarity=0.7,
                  covers=frozenset({0, 1}))
    line = Item("said", "said", 2, 62.0, 65.0, rank=1, relaxed=True, creates=True,
                covers=frozenset({0, 1}), fts="segments_fts", rowid=21)
    lists = {"said": [line], "similar": [window]}
    idf = (2.0, 1.0, 0.0)
    assert [m.media_id for _, m in moments.fuse(lists, RRF_K, WEIGHTS, False, idf)] == [2, 1]
    # a descriptive query (more words than COVERAGE_FIRST_WORDS) is ranked by score
    idf4 = idf + (1.0,)
    assert [m.media_id for _, m in moments.fuse(lists, RRF_K, WEIGHTS, False, idf4)] == [1, 2]


def test_a_line_later_in_a_meaning_window_supports_that_windows_moment():
    from indexer.search.moments import fuse
    from indexer.search.sources import RRF_K, WEIGHTS
    # relaxed_said found the words in the window's fourth line, 8 s after its first
    # segment (where the "similar" item lies): that line supports the window's moment
    # and makes it the one where a line holds the words
    window = Item("similar", "similar", 1, 88.8, 91.2, rank=3, similarity=0.5,
                  covers=frozenset({0, 2}))
    other = Item("similar", "similar", 2, 46.5, 49.3, rank=2, similarity=0.55,
                 covers=frozenset({2}))
    line = Item("said", "said", 1, 93.0, 95.2, rank=1, relaxed=True, creates=False,
                covers=frozenset({0, 2}), fts="segments_fts", rowid=7, window=window)
    other_line = Item("said", "said", 2, 46.5, 49.3, rank=2, relaxed=True, creates=False,
                      covers=frozenset({2}), fts="segments_fts", rowid=8, window=other)
    lists = {"said": [line, other_line], "similar": [other, window]}
    ranked = fuse(lists, RRF_K, WEIGHTS, False, (1.0, 1.0, 1.0))
    assert [m.media_id for _, m in ranked] == [1, 2]
    assert line in ranked[0][1].items and (ranked[0][1].start, ranked[0][1].end) == (88.8, 91.2)


def _said_library(tmp_path, said: dict[str, list[str]]) -> tuple[Store, dict[str, int]]:
    """A library of one file per language whose lines are `said`, 4 s apart."""
    store = Store(tmp_path / "lib.db")
    ids = {}
    for i, (lang, lines) in enumerate(said.items()):
        mid = ids[lang] = store.add_media(f"/lib/said-{lang}.wav", f"fp{i}", 1000, 0)
        store.save_probe(mid, {"duration": 30.0, "container": "wav", "streams": [],
                               "kind": "audio"}, [])
        store.save_transcript(mid, lang, [
            {"start": 4.0 * k, "end": 4.0 * k + 3.0, "text": s, "language": lang,
             "words": [{"start": 4.0 * k, "end": 4.0 * k + 3.0, "word": s}]}
            for k, s in enumerate(lines)])
    return store, ids


def test_a_number_is_found_as_digits_or_words(tmp_path):
    """Whisper writes "Press 0"; people type "zero" (and the other way round), in each of
    the library's languages. An article that is also "one" ("un") stays itself."""
    store, ids = _said_library(tmp_path, {
        "en": ["Welcome to the voicemail menu.", "Press 0 to reach the operator.",
               "Press five to hear your messages again."],
        "es": ["Bienvenido al buzón de voz.", "Presione 0 para comunicarse con la operadora."],
        "fr": ["Un agent va vous répondre.", "Tapez 1 pour un agent."]})

    def top(query):
        hits = search(store, query, mode="text")
        assert hits, query
        return hits[0]

    hit = top("press zero operator")
    assert (hit.media_id, hit.start) == (ids["en"], 4.0) and "[0]" in hit.snippet
    hit = top("cero operadora")
    assert (hit.media_id, hit.start) == (ids["es"], 4.0) and "[0]" in hit.snippet
    hit = top("press 5 messages")
    assert (hit.media_id, hit.start) == (ids["en"], 8.0) and "[five]" in hit.snippet
    hit = top("tapez agent")
    assert hit.media_id == ids["fr"]
    # "1" is not "un" (an article): only the line that says 1 holds both words
    assert [(h.media_id, h.start) for h in search(store, "1 agent", mode="text")] == \
        [(ids["fr"], 4.0)]
    store.close()


def test_one_word_of_several_found_only_in_another_form_makes_no_hit(tmp_path):
    """"sourdough starter hydration" in a library of voicemail prompts: "starter" is only
    there as "start" (its stem), and nothing else of the query is. Such a line supports a
    moment found otherwise but is no hit by itself, in full-text search too; a word found
    as typed, or two words in other forms, still are."""
    store, ids = _said_library(tmp_path, {
        "en": ["Press 8 to truncate the file and start over.", "Your message has been saved."],
        "fr": ["Tapé 3 pour les options avancées."]})            # French stems apply too
    mid = ids["en"]
    from indexer.search.word_forms import query_forms
    assert "start" in query_forms(store, "sourdough starter hydration").get("starter", ())
    assert search(store, "sourdough starter hydration", mode="text") == []
    assert search(store, "marathon taper carbohydrate", mode="text") == []   # "tapé"
    hits = search(store, "sourdough start hydration", mode="text")      # as typed
    assert [(h.media_id, h.start) for h in hits] == [(mid, 0.0)]
    hits = search(store, "starter truncated sourdough", mode="text")   # two words
    assert hits and (hits[0].media_id, hits[0].start) == (mid, 0.0)
    store.close()


def test_a_line_holding_the_words_as_typed_comes_before_one_holding_other_forms(tmp_path):
    """Two files' lines hold both words of "expulsé conférence", one of them "expulsé"
    only as "expulsés" (a form of it): the line that says it as typed comes first,
    though bm25 alone prefers the other, shorter line."""
    store = Store(tmp_path / "lib.db")
    said = {"short.wav": "Vous avez été expulsés de la conférence.",
            "long.wav": "Vous avez été expulsé de cette conférence par un modérateur."}
    ids = {}
    for name, line in said.items():
        mid = ids[name] = store.add_media(f"/lib/{name}", name, 1000, 0)
        store.save_probe(mid, {"duration": 30.0, "container": "wav", "streams": [],
                               "kind": "audio"}, [])
        store.save_transcript(mid, "fr", [{"start": 2.0, "end": 5.0, "text": line,
                                           "language": "fr", "words": []}])
    hits = search(store, "expulsé conférence", mode="text")
    assert [h.media_id for h in hits] == [ids["long.wav"], ids["short.wav"]]
    store.close()


def test_a_said_match_starts_at_the_sentence_of_its_line_that_holds_the_words(tmp_path):
    """The recogniser made one line of two sentences: a query for the second finds the
    line, and the moment starts (and plays) where that sentence does, not at the line."""
    store = Store(tmp_path / "lib.db")
    mid = store.add_media("/lib/menu.wav", "fp", 1000, 0)
    store.save_probe(mid, {"duration": 30.0, "container": "wav", "streams": [],
                           "kind": "audio"}, [])
    words = "Welcome to the voicemail menu. To delete your greeting, press seven.".split()
    store.save_transcript(mid, "en", [{
        "start": 10.0, "end": 10.0 + 0.5 * len(words), "language": "en",
        "text": " ".join(words),
        "words": [{"start": 10.0 + 0.5 * k, "end": 10.4 + 0.5 * k, "word": " " + w}
                  for k, w in enumerate(words)]}])
    hit = search(store, "delete greeting", mode="text")[0]
    assert (hit.start, hit.seek) == (12.5, 13.0)        # "To", then "delete"
    hit = search(store, "voicemail menu", mode="text")[0]
    assert (hit.start, hit.seek) == (10.0, 11.5)        # the line's first sentence
    store.close()


def _one_file(tmp_path, lang: str, lines: list[str], *, step: float = 5.0,
              words: str = "line", embedder=None) -> tuple[Store, int]:
    """A library of one file saying `lines`, `step` s apart; each line's words timed as
    one word ("line"), its whitespace words 0.5 s apart ("split") or its characters 0.5 s
    apart ("chars"); with an embedder, its meaning windows indexed too."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "lib.db")
    mid = store.add_media(f"/lib/{lang}.wav", "fp", 1000, 0)
    store.save_probe(mid, {"duration": step * len(lines) + 10, "container": "wav",
                           "streams": [], "kind": "audio"}, [])

    def timed(k: int, t: str) -> list[dict]:
        if words == "line":
            return [{"start": step * k, "end": step * k + 4, "word": t}]
        parts = [" " + w for w in t.split()] if words == "split" else list(t)
        return [{"start": step * k + 0.5 * j, "end": step * k + 0.5 * j + 0.4, "word": w}
                for j, w in enumerate(parts)]
    store.save_transcript(mid, lang, [
        {"start": step * k, "end": step * k + 4, "text": t, "language": lang,
         "words": timed(k, t)} for k, t in enumerate(lines)])
    if embedder is not None:
        from indexer.stages.text import transcript_windows
        windows = transcript_windows(store.transcript(mid))
        store.save_text_index(mid, windows, embedder.embed([w["text"] for w in windows],
                                                           kind="passage"), [])
    return store, mid


def _words_only(store: Store, query: str, embedder) -> list:
    """Hybrid search under a similarity floor no meaning window reaches: what the query's
    words find by themselves, as for real queries whose meaning matches nothing."""
    return search(store, query, embedder=embedder, min_similarity=0.99)


def test_hybrid_search_that_finds_nothing_falls_back_to_lines_holding_two_words(
        tmp_path, embedder):
    """"appuyez neige entrée" (the recogniser heard "neige" as "surnâche"): both other
    words are common in the library, so hybrid search relaxes to neither, and with no
    meaning window near enough it found nothing. It now falls back to the line holding
    two of the words; a query sharing one common word with the library still finds
    nothing."""
    store, _ = _one_hit_then_none(tmp_path, embedder, "fr", [
        "Pour enregistrer votre message, appuyez sur un.", "Appuyez sur étoile pour annuler.",
        "Appuyez sur dièse pour confirmer.", "Pour écouter vos messages, appuyez sur deux.",
        "Appuyez surnâche pour plus d'entrée.", "Votre entrée n'est pas valide.",
        "Cette entrée est déjà utilisée.", "Entrée refusée, essayez à nouveau.",
        "Bienvenue dans la messagerie vocale.", "La conférence est verrouillée."],
        "appuyez neige entrée", 24.0, "appuyez recette chocolat")
    store.close()


def _one_hit_then_none(tmp_path, embedder, lang: str, lines: list[str], query: str,
                       at: float, unrelated: str) -> tuple[Store, int]:
    """A library of `lines` 6 s apart where hybrid search's words alone (`_words_only`)
    find `query` at `at` only, and `unrelated` (one common word shared) nowhere."""
    store, mid = _one_file(tmp_path, lang, lines, step=6.0, embedder=embedder)
    hits = _words_only(store, query, embedder)
    assert [(h.media_id, h.start) for h in hits] == [(mid, at)]
    assert _words_only(store, unrelated, embedder) == []
    return store, mid


def test_the_fallback_counts_the_words_a_line_says_in_a_near_spelling(tmp_path, embedder):
    """"ждайте пожалуйста единение": the recogniser wrote "Жидайте, пожалуйста,
    соединение.", so the line holds one of the words as typed, and hybrid search found
    nothing. Its fallback now counts the other two, said there in a near spelling (one
    letter more; the word inside a longer one), and finds that line first; a near spelling
    counts only beside a word held as typed, so one common word still finds nothing."""
    store, mid = _one_hit_then_none(tmp_path, embedder, "ru", [
        "Пожалуйста, проверьте номер и наберите еще раз.",
        "Пожалуйста, попробуйте еще раз.", "Жидайте, пожалуйста, соединение.",
        "Пустые конференции не существуют.", "Пожалуйста, введите номер канала.",
        "Соединение прервано.", "Конференция записывается."],
        "ждайте пожалуйста единение", 12.0, "пожалуйста закажите пиццу")
    # the same words in full-text search: the near spelling does not change its order
    text = search(store, "ждайте пожалуйста единение", mode="text")
    assert (mid, 12.0) in {(h.media_id, h.start) for h in text}
    store.close()


def test_near_spellings():
    from indexer.search.query_text import content_groups, near_groups, near_words
    assert near_words("ждайте", "жидайте") and near_words("единение", "соединение")
    assert near_words("attisa", "attesa") and near_words("vocce", "vocca")
    assert not near_words("voce", "vocce")                   # too short to guess at
    assert not near_words("estere", "lettere")               # two letters apart
    assert not near_words("nation", "international")         # inside, but a small part
    groups = content_groups("ждайте пожалуйста единение")
    assert near_groups("Жидайте, пожалуйста, соединение.", groups,
                       frozenset({1})) == frozenset({0, 2})


def test_a_word_rare_as_typed_makes_a_hybrid_hit_though_its_other_forms_are_common(
        tmp_path, embedder):
    """"espere interesa vamos": "espere" is said in one line, its forms "espera",
    "esperar" in many, and the other words nowhere. Counted with its forms the word is
    common, so hybrid search (no meaning window near enough) found nothing where full
    text found the line; as typed it is rare, and the line saying it is the hit. A line
    holding only another form makes none."""
    from indexer.search.word_forms import query_forms
    store, mid = _one_file(tmp_path, "es", [
        "Por favor espere mientras tratamos de comunicarnos.", "Gracias por su espera.",
        "Su llamada está en espera.", "Puede esperar en la línea.",
        "La espera estimada es de dos minutos.", "Debe esperar la señal.",
        "Bienvenido al sistema de mensajes.", "La conferencia está bloqueada."],
        step=6.0, embedder=embedder)
    assert {"espera", "esperar"} <= set(query_forms(store, "espere interesa").get("espere", ()))
    hits = _words_only(store, "espere interesa vamos", embedder)
    assert [(h.media_id, h.start) for h in hits] == [(mid, 0.0)]
    assert "[espere]" in hits[0].snippet
    # "esperar" as typed is in two lines: rare too, and only those lines are hits
    hits = _words_only(store, "esperar recetas chocolate", embedder)
    assert sorted(h.start for h in hits) == [18.0, 30.0]
    store.close()


def test_chinese_and_japanese_words_are_found_inside_a_line(tmp_path, embedder):
    """Chinese and Japanese are written without spaces, so FTS5 made one token of a whole
    line and a word in it was never found. Each of their characters is now a word of the
    full-text tables, and a query's run of them the phrase of its characters: found where
    they stand together, marked whole, played at its first character's second."""
    store, mid = _one_file(tmp_path, "zh", [
        "我们明天去北京开会。", "会议室在三楼。", "今天天气很好。", "東京タワーに行きました。"],
        words="chars", embedder=embedder)
    for mode in ("text", "hybrid"):
        hits = search(store, "北京 开会", mode=mode, embedder=embedder)
        assert [(h.start, h.seek, h.snippet) for h in hits][:1] == \
            [(0.0, 2.5, "我们明天去[北京][开会]。")], mode
        hits = search(store, "タワー", mode=mode, embedder=embedder)
        assert (hits[0].start, hits[0].seek) == (15.0, 16.0), mode
    assert [h.start for h in search(store, '"三楼"', mode="text")] == [5.0]
    assert search(store, "京北", mode="text") == []       # the characters, not together
    store.close()
    # Thai too: no spaces between words, and vowel signs (marks) between its letters
    store, mid = _one_file(tmp_path / "th", "th", ["สวัสดีครับ วันนี้เราไปตลาดน้ำ", "อากาศดีมาก"],
                           words="split")
    assert [h.snippet for h in search(store, "สวัสดี", mode="text")] == \
        ["[สวัสดี]ครับ วันนี้เราไปตลาดน…"]
    assert [h.start for h in search(store, "อากาศ", mode="text")] == [5.0]
    assert search(store, "ตลาดดี", mode="text") == []
    store.close()
    store, mid = _one_file(tmp_path / "zh", "zh", ["今天天气很好。"], words="chars")
    # an edited line is indexed the same way (the triggers space it too)
    seg = store.transcript(mid)[0]
    store.db.execute("UPDATE segments SET text = ? WHERE id = ?", ("今天下雨了。", seg["id"]))
    assert search(store, "天气", mode="text") == []
    assert [h.start for h in search(store, "下雨", mode="text")] == [0.0]
    store.close()


def test_a_meaning_window_playing_from_a_line_already_shown_is_not_shown_again(
        tmp_path, embedder):
    """"Tokyo": the line saying it is a hit by its word, and the meaning window holding
    the four lines is a moment of its own, which plays from the line with the query's
    words, the same line: it was listed a second time, under the window's text."""
    store, mid = _one_file(tmp_path, "en", [
        "We are going to the meeting tomorrow.", "The room is on the third floor.",
        "The weather is nice today.", "We visited the Tokyo tower."],
        words="split", embedder=embedder)
    assert len(store.db.execute("SELECT * FROM segment_vec").fetchall()) == 1   # one window
    hits = search(store, "Tokyo", embedder=embedder)
    assert [(h.start, h.kind, h.snippet) for h in hits] == \
        [(15.0, "said", "We visited the [Tokyo] tower.")]
    store.close()


def test_query_words_fold_to_the_terms_fts5_makes(tmp_path):
    """fold() is the term FTS5's unicode61 tokenizer (remove_diacritics 2) makes: Latin
    letters lose their marks, other scripts keep theirs. It had folded Russian "й" to "и",
    so "пожалуйста" or "попробуйте" were never found among the library's terms (their
    rarity and weight came out as for a word the library does not hold)."""
    from indexer.search.query_text import fold
    from indexer.store import search_reads as reads
    words = ["Café", "Việt", "ŞĞÇ", "Łódź", "пожалуйста", "ЁЛКА", "が", "서울에서", "ǅ",
             "ﬁ", "Ａ", "ά", "straße", "Ø"]
    store, _ = _one_file(tmp_path, "ru", words, step=1.0)
    assert [fold(w) for w in words] == [
        "cafe", "viet", "sgc", "łodz", "пожалуйста", "ёлка", "が", "서울에서", "ǆ", "ﬁ", "ａ",
        "ά", "straße", "ø"]
    assert all(reads.doc_freq(store, "segments_fts", fold(w), False) == 1 for w in words)
    store.close()


def test_a_korean_word_is_found_with_the_particle_joined_to_it(tmp_path):
    """Korean joins particles and endings to the word ("서울에서": in Seoul), so a query's
    Hangul word matches as a prefix, in the search and in the snippet."""
    store, _ = _one_file(tmp_path, "ko", ["우리는 내일 서울에서 회의를 합니다.", "오늘 날씨가 좋습니다."],
                         words="split")
    hits = search(store, "서울 회의", mode="text")
    assert [(h.start, h.seek, h.snippet) for h in hits] == \
        [(0.0, 1.0, "우리는 내일 [서울에서] [회의를] 합니다.")]
    assert [h.start for h in search(store, "날씨", mode="text")] == [5.0]
    assert search(store, "부산", mode="text") == []
    store.close()


def test_a_word_written_with_combining_marks_is_found_whole(tmp_path):
    """FTS5's unicode61 splits a Hindi word at its vowel signs and viramas ("नमस्ते":
    "नमस", "त"). A query's word was then an AND of its pieces, found in any line holding
    them apart ("नमस्कार तीन" holds "नमस" and "त"); it is now the phrase of its pieces,
    marked whole."""
    store, mid = _one_file(tmp_path, "hi", ["नमस्कार तीन लोग आए।", "नमस्ते दुनिया, आज मौसम अच्छा है।"],
                           words="split")
    hits = search(store, "नमस्ते", mode="text")
    assert [(h.start, h.snippet) for h in hits] == [(5.0, "[नमस्ते] दुनिया, आज मौसम अच्छा है।")]
    assert [h.start for h in search(store, "मौसम", mode="text")] == [5.0]
    store.close()


def test_words_said_over_two_lines_play_from_the_first_of_them(tmp_path):
    """"composé veillez essayez": the recogniser cut the sentence saying them after
    "composé", so no line holds all three. The hit is the line holding two, and it now
    starts at the line just before it that says the third, plays from that word and marks
    the words of both lines. A line before it adding no word, or a line without any of
    the words in between, is not joined."""
    store, mid = _one_file(tmp_path / "joined", "fr", [
        "Bienvenue dans la messagerie.", "Le numéro composé n'est pas en service.",
        "Veillez vérifier le numéro et essayez de nouveau.", "Merci de votre appel."],
        words="split")
    hits = search(store, "composé veillez essayez", mode="text")
    assert (hits[0].media_id, hits[0].start, hits[0].seek) == (mid, 5.0, 6.0)
    assert "[composé]" in hits[0].snippet and "[Veillez]" in hits[0].snippet
    assert hits[0].end == pytest.approx(14.0)
    store.close()
    store, mid = _one_file(tmp_path / "apart", "fr", [
        "Le numéro composé n'est pas en service.", "Merci de votre patience.",
        "Veillez vérifier le numéro et essayez de nouveau."], words="split")
    hits = search(store, "composé veillez essayez", mode="text")
    assert (hits[0].start, hits[0].seek) == (10.0, 10.0)
    store.close()
    store, mid = _one_file(tmp_path / "nothing new", "fr", [
        "Veillez patienter.", "Veillez vérifier le numéro et essayez de nouveau."],
        words="split")
    hits = search(store, "composé veillez essayez", mode="text")
    assert (hits[0].start, hits[0].seek) == (5.0, 5.0)
    store.close()
    # the words begin in the line's second sentence: that sentence is the moment, alone
    store, mid = _one_file(tmp_path / "later sentence", "fr", [
        "Le numéro composé.", "Merci beaucoup. Veillez vérifier et essayez."], words="split")
    hits = search(store, "composé veillez essayez", mode="text")
    assert (hits[0].start, hits[0].seek) == (6.0, 6.0)
    assert "composé" not in hits[0].snippet and "[Veillez]" in hits[0].snippet
    store.close()
    # the line says the third word itself, misheard ("composée"): the line before that
    # says it as typed is another sentence, and is not joined
    store, mid = _one_file(tmp_path / "misheard", "fr", [
        "Le numéro composé n'est pas en service.",
        "Composée, veillez vérifier le numéro et essayez de nouveau."], words="split")
    hits = search(store, "composé veillez essayez", mode="text")
    assert (hits[0].start, hits[0].seek) == (5.0, 5.5)
    store.close()


def test_a_meaning_window_plays_from_the_first_of_consecutive_lines_holding_the_words(
        tmp_path):
    """Within a meaning window, consecutive lines that together hold more of the query's
    words than any one of them place the window's hit at the first; a tie goes to the
    shortest run (one line holding them all, not the run that ends with it)."""
    from indexer.search.moments import _best_segment_start
    from indexer.search.query_text import content_groups
    store, mid = _one_file(tmp_path, "fr", [
        "Bienvenue dans la messagerie.", "Le numéro composé n'est pas en service.",
        "Veillez vérifier le numéro et essayez de nouveau.", "Merci de votre appel.",
        "Le service est fermé.", "Composé, veillez, essayez : tout est dit."])
    segs = [(s["id"], s["start"], s["end"], s["text"]) for s in store.transcript(mid)]
    assert _best_segment_start(store, segs[:4], content_groups("composé veillez essayez")) == 5.0
    assert _best_segment_start(store, segs[3:], content_groups("composé veillez essayez")) == 25.0
    assert _best_segment_start(store, segs[:4], content_groups("veillez service")) == 5.0
    assert _best_segment_start(store, segs[:1], content_groups("veillez service")) is None
    store.close()


def test_a_line_holding_the_words_as_typed_comes_before_one_holding_their_other_forms():
    """"presione engrasar número": file 1's meaning window is the best meaning match and
    its line says "presionando un numerado", two of the words in other forms only; file
    2's line says "Presione 1 para ingresar un número", the same two as typed. Both hold
    two words, so the line as typed decides."""
    from indexer.search import moments
    from indexer.search.sources import RRF_K, WEIGHTS
    window = Item("similar", "similar", 1, 32.0, 62.0, rank=1, similarity=0.7,
                  covers=frozenset({0, 2}))
    forms = Item("said", "said", 1, 32.0, 35.0, rank=2, relaxed=True, creates=False,
                 covers=frozenset({0, 2}), typed=frozenset(), fts="segments_fts", rowid=11)
    typed = Item("said", "said", 2, 39.0, 41.0, rank=1, relaxed=True, creates=True,
                 covers=frozenset({0, 2}), typed=frozenset({0, 2}), fts="segments_fts",
                 rowid=21)
    lists = {"said": [typed, forms], "similar": [window]}
    idf = (1.0, 2.0, 1.0)
    assert [m.media_id for _, m in moments.fuse(lists, RRF_K, WEIGHTS, False, idf)] == [2, 1]
    moments.TYPED_FIRST_LINE = False
    try:       # the same words held: by score, the window with its line leads
        assert [m.media_id for _, m in moments.fuse(lists, RRF_K, WEIGHTS, False,
                                                    idf)] == [1, 2]
    finally:
        moments.TYPED_FIRST_LINE = True


def test_a_line_holding_two_of_three_common_words_is_a_hybrid_hit(tmp_path, embedder):
    """In hybrid search a line holding only common words of the query made no moment of
    its own (only rare words did), so with a rare word's line found, the line saying two
    of the three words was not listed at all; it is now."""
    store, mid = _one_file(tmp_path, "es", [
        "La conferencia está bloqueada.", "Hay que engrasar la bicicleta.",
        "Presione uno para revisar sus mensajes.", "Presione dos para salir.",
        "Presione tres para repetir.", "Ingrese su número de cuenta.",
        "Su número no es válido.", "Presione cuatro para la ayuda.",
        "Presione uno para ingresar un número.", "Marque el número de nuevo."],
        step=6.0, embedder=embedder)
    hits = _words_only(store, "presione engrasar número", embedder)
    assert {(h.media_id, h.start) for h in hits} == {(mid, 6.0), (mid, 48.0)}
    # one common word shared with the library is still nothing
    assert _words_only(store, "presione recetas chocolate", embedder) == []
    store.close()
