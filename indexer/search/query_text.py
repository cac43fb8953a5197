"""What a query's text means: the speaker it asks for (speaker:"Anna"), the person on
screen it asks for (person:"Anna"), the FTS5
queries made of the rest (strict, relaxed), the words it matches in a text (folding
case and diacritics as FTS5's unicode61 tokenizer does, honouring "phrases" and
prefix* terms), the snippet marking them, and where in a segment's word timings the
query was first said."""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import Iterable, Sequence

from indexer.unspaced_text import UNSPACED, joins_endings, spaced

MARK_OPEN, MARK_CLOSE = "[", "]"
SNIPPET_TOKENS = 20

_TOKEN = re.compile(r'"[^"]*"|\S+')
# A word of a text as the full-text tables hold it: a run of word characters, except that
# each letter of a script written without spaces (Chinese, Japanese, Thai...) is a word of
# its own (indexer.unspaced_text); a query word is such a run whole, searched as the
# phrase of its letters ("北 京"). FTS5 splits at "_" too: a connector, not a letter.
WORD = re.compile(rf"[{UNSPACED}]|[^\W_{UNSPACED}]+")
_QUERY_WORD = re.compile(rf"[{UNSPACED}]+|[^\W_{UNSPACED}]+")


def _marked_runs(text: str) -> Iterable[str]:
    """Maximal runs of letters, digits and combining marks."""
    run: list[str] = []
    for c in text:
        if c.isalnum() or unicodedata.category(c)[0] == "M":
            run.append(c)
        elif run:
            yield "".join(run)
            run = []
    if run:
        yield "".join(run)


def query_words(text: str) -> list[str]:
    """The words of a query's text, a run of unspaced letters spaced ("北 京"). A word
    written with combining marks (Hindi, Thai, Hebrew points), which FTS5's unicode61
    splits at its marks ("नमस्ते": "नमस", "त"), is the phrase of its pieces, as such a run is."""
    if text.isascii():
        return _QUERY_WORD.findall(text)
    out = []
    for run in _marked_runs(text):
        if any(unicodedata.category(c)[0] == "M" for c in run):
            if pieces := WORD.findall(run):
                out.append(spaced(" ".join(pieces)))
        else:
            out += [spaced(w) for w in _QUERY_WORD.findall(run)]
    return out

# Words too common to make a relaxed (any-word) match mean anything: en, fr, de, es, it, pt.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours ourselves out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours yourself yourselves said say says talk talked talking
tell told thing things something anything part bit someone somebody people one ones get got
le la les un une des du de d l et ou en au aux ce cet cette ces il elle ils elles on nous vous je
tu me te se sa son ses leur leurs mon ma mes ton ta tes qui que quoi dont où est sont était être
avoir a ai as avons avez ont pas ne plus pour par avec dans sur sous chez comme mais donc ni car
y quand parle parlé dit
der die das den dem des ein eine einen einem einer eines und oder aber nicht ist sind war waren
ich du er sie es wir ihr mit von zu zum zur im in am an auf aus bei für über unter um wie was wer
wo wann warum dass hat haben wird werden sich auch noch nur so sagt gesagt
el la los las un una unos unas y o pero no es son era fue ser estar está de del al en con por para
sobre como que qué quien cuando donde se su sus lo le les me te mi tu nos dijo habla hablan
il lo gli i una uno e non è sono di da con per su tra fra che chi come dove quando
o os as um uma é são do da dos das no na nos nas em com por para que
""".split())


def _named_term(field: str) -> re.Pattern:
    """field:"Anna Smith", field:'Anna', field:“Anna”, field:Anna, field:#12 (an id)."""
    return re.compile(rf'(?<!\S){field}:(?:"([^"]*)"?|\'([^\']*)\'?|“([^”]*)”?|(\S*))',
                      re.IGNORECASE)


_TERMS = {field: _named_term(field) for field in ("speaker", "person")}


def _split_term(text: str, field: str) -> tuple[str, str | int | None]:
    """(the query without its field:… term, what it names: a name, or an id for
    field:#12; None when it names none). ValueError for an empty name or two different
    ones."""
    pattern = _TERMS[field]
    found: list[str | int] = []

    def take(m: re.Match) -> str:
        name = " ".join(next((g for g in m.groups() if g is not None), "").split())
        if not name:
            raise ValueError(f'{field}: needs a name, e.g. {field}:"Anna" or {field}:Anna.')
        found.append(int(name[1:]) if name.startswith("#") and name[1:].isdigit() else name)
        return " "
    rest = " ".join(pattern.sub(take, text).split())
    names = {v.casefold() if isinstance(v, str) else v for v in found}
    if len(names) > 1:
        raise ValueError(f"A query can ask for one {field}: " +
                         ", ".join(f"{field}:{v}" for v in found) + ".")
    return rest, (found[0] if found else None)


def split_speaker(text: str) -> tuple[str, str | int | None]:
    """The query without its speaker:… term, and the voice it names (speaker:#12: a
    voice id)."""
    return _split_term(text, "speaker")


def split_person(text: str) -> tuple[str, str | int | None]:
    """The query without its person:… term, and the person it names (person:#12: a
    person id)."""
    return _split_term(text, "person")


def person_term(name: str | None = None, person_id: int | None = None) -> str:
    """The query text that asks for a person on screen: person:"Anna" by their name,
    else person:#12 by their id."""
    if name and '"' not in name:
        return f'person:"{" ".join(name.split())}"'
    if person_id is None:
        raise ValueError("a person's name (without double quotes) or their id is needed")
    return f"person:#{int(person_id)}"


def speaker_term(name: str | None = None, voice_id: int | None = None) -> str:
    """The query text that asks for a voice: speaker:"Anna" by its name, else
    speaker:#12 by its id."""
    if name and '"' not in name:
        return f'speaker:"{" ".join(name.split())}"'
    if voice_id is None:
        raise ValueError("a voice's name (without double quotes) or its id is needed")
    return f"speaker:#{int(voice_id)}"


def _fold_char(c: str) -> str:
    o = ord(c)
    if o <= 0x24F or 0x1E00 <= o <= 0x1EFF:       # Latin: the letter without its marks
        return "".join(x for x in unicodedata.normalize("NFD", c) if not unicodedata.combining(x))
    return c


def fold(text: str) -> str:
    """Lower case, Latin letters without diacritics: the term FTS5's unicode61 tokenizer
    (remove_diacritics 2) makes of a word. Other scripts keep their marks there (Russian
    "й" and "ё", Japanese "が", Hangul syllables) and so here, or a word holding one would
    never be found among the library's terms."""
    low = text.lower()
    return low if low.isascii() else "".join(_fold_char(c) for c in low)


def _alternatives(word: str, forms: dict | None) -> str:
    """A literal word for an FTS5 query, as ("word" OR "form" ...) when it has forms."""
    extra = forms.get(fold(word), ()) if forms else ()
    if not extra:
        return f'"{word}"'
    return "(" + " OR ".join([f'"{word}"'] + [f'"{f}"' for f in extra]) + ")"


def fts_query(text: str, forms: dict | None = None) -> str | None:
    """User text -> a safe FTS5 query. "Quoted phrases" stay phrases, a trailing *
    makes a prefix query, everything else is a literal token (ANDed), matching any of
    its `forms` (folded word -> other forms, indexer.search.word_forms) too."""
    parts = []
    for tok in _TOKEN.findall(text.strip()):
        if tok.startswith('"') and tok.endswith('"') and len(tok) > 1:
            words = WORD.findall(tok[1:-1])
            if words:
                parts.append('"' + " ".join(words) + '"')
            continue
        prefix = tok.endswith("*")
        words = query_words(tok)
        for i, word in enumerate(words):
            last_prefix = (prefix and i == len(words) - 1) or joins_endings(word)
            parts.append(f'"{word}"*' if last_prefix else _alternatives(word, forms))
    # AND spelled out: FTS5 takes "a" "b" as an AND, but not a bracketed group of
    # forms followed by anything ("(a OR b) c" is a syntax error)
    return " AND ".join(parts) or None


def relaxed_query(text: str, forms: dict | None = None) -> str | None:
    """Any content word (stopwords and 1-letter words dropped) or one of its `forms`,
    ORed; None when that would be the same as the strict query or nothing is left."""
    if '"' in text:
        return None                           # the user asked for a phrase: keep it strict
    words, seen = [], set()
    for tok in _TOKEN.findall(text.strip()):
        prefix = tok.endswith("*")
        ws = query_words(tok)
        for i, w in enumerate(ws):
            lw = w.lower()
            if lw in STOPWORDS or len(lw) < 2 or lw in seen:
                continue
            seen.add(lw)
            if (prefix and i == len(ws) - 1) or joins_endings(w):
                words.append(f'"{w}"*')
            else:
                words += [f'"{w}"'] + [f'"{f}"' for f in (forms or {}).get(fold(w), ())]
    if len(words) < 2 and words == [p for p in (fts_query(text) or "").split(" AND ") if p]:
        return None
    return " OR ".join(words) or None


def with_forms(query: str, forms: dict | None) -> str:
    """The query text with its words' other forms added as words of their own, for
    the matching done here (snippets, the word a query was said at)."""
    extra = [f'"{f}"' if " " in f else f for fs in (forms or {}).values() for f in fs]
    return query + (" " + " ".join(extra) if extra else "")


def content_groups(query: str, forms: dict | None = None) -> tuple[tuple, ...]:
    """One group per content word of the query (as `query_patterns(query, True)` gives
    them, and a stopword with forms: "people" is a word for the "person" tag): the
    alternatives ((folded word, is_prefix), then its forms) any of which makes a text
    hold that word."""
    _, terms = query_patterns(query, False)
    groups, seen = [], set()
    for t, p in terms:
        if (t, p) in seen or ((t in STOPWORDS or len(t) < 2) and not (forms or {}).get(t)):
            continue
        seen.add((t, p))
        groups.append(((t, p),) + tuple((f, False) for f in (forms or {}).get(t, ())))
    return tuple(groups)


def covered(text: str, groups: tuple[tuple, ...]) -> frozenset:
    """The indices of the content groups (content_groups) a text holds; an alternative
    of several words ("golden retriever") is held as a phrase."""
    holds = _holder(text)
    return frozenset(i for i, alts in enumerate(groups) if any(holds(t, p) for t, p in alts))


# A word the recogniser spelled a little differently ("vocce" for "voce", "жидайте" for
# "ждайте", "соединение" heard where "за единение" was said): one edit apart, or one held
# inside the other, for words of at least this many letters (near_groups)
NEAR_MIN_LETTERS = 5
NEAR_INSIDE_SHARE = 0.75    # ... the shorter word at least this share of the longer


def _one_edit(a: str, b: str) -> bool:
    """Whether two different words are one insertion, deletion, substitution or swap of
    neighbouring letters apart."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1:] == shorter[i:]


def near_words(typed: str, word: str) -> bool:
    """Whether a text's word is a near spelling of a query word as typed (both folded)."""
    short, long_ = sorted((typed, word), key=len)
    if len(short) < NEAR_MIN_LETTERS:
        return False
    return _one_edit(typed, word) or (short in long_ and len(short) >= NEAR_INSIDE_SHARE * len(long_))


def near_groups(text: str, groups: tuple[tuple, ...], held: frozenset) -> frozenset:
    """The content groups not in `held` whose word as typed is spelled nearly so in the
    text (near_words); a phrase or a prefix is never matched nearly."""
    todo = [(i, alts[0][0]) for i, alts in enumerate(groups) if i not in held
            and not alts[0][1] and " " not in alts[0][0] and len(alts[0][0]) >= NEAR_MIN_LETTERS]
    if not todo:
        return frozenset()
    tokens = set(_folded_words(text))
    return frozenset(i for i, t in todo if any(near_words(t, w) for w in tokens))


def _folded_words(text: str) -> list[str]:
    """A text's words (WORD) as the full-text tables hold them: lower-cased and folded."""
    return [_folded(w) for w in WORD.findall(text.lower())]


def _holder(text: str):
    """holds(term, is_prefix): whether the text holds a folded term; a term of several
    words ("golden retriever", a CJK word's letters "北 京") as a phrase."""
    tokens = _folded_words(text)
    words, joined = set(tokens), f" {' '.join(tokens)} "

    def holds(t: str, p: bool) -> bool:
        if " " in t:
            return f" {' '.join(WORD.findall(t))} " in joined
        return t in words or (p and any(w.startswith(t) for w in words))
    return holds


@functools.lru_cache(maxsize=256)
def query_patterns(query: str, relaxed: bool) -> tuple[tuple, tuple]:
    """(phrases as folded word lists, single terms as (folded word, is_prefix)); relaxed
    drops stopwords and 1-letter words from the single terms."""
    phrases, terms = [], []
    for tok in _TOKEN.findall(query.strip()):
        if tok.startswith('"') and tok.endswith('"') and len(tok) > 1:
            words = [fold(w) for w in WORD.findall(tok[1:-1])]
            if len(words) > 1:
                phrases.append(words)
            elif words:
                terms.append((words[0], False))
            continue
        words = [fold(w) for w in query_words(tok)]
        for i, w in enumerate(words):
            if relaxed and (w in STOPWORDS or len(w) < 2):
                continue
            terms.append((w, (tok.endswith("*") and i == len(words) - 1) or joins_endings(w)))
    return tuple(tuple(p) for p in phrases), tuple(terms)


def _folded(word: str) -> str:
    """A lower-case \\w+ token folded; ASCII needs no folding (and is most words)."""
    return word if word.isascii() else fold(word)


def _matches(tokens: Sequence[str], phrases, terms) -> tuple[list[bool], list[bool]]:
    """Per folded token: whether it matches the query, and whether it continues the
    matched phrase of the token before it."""
    hit = [False] * len(tokens)
    joined = [False] * len(tokens)
    # a word of several pieces ("北 京") is the phrase of them
    phrases = [*phrases, *(t.split() for t, _ in terms if " " in t)]
    terms = [(t, p) for t, p in terms if " " not in t]
    for words in phrases:
        n = len(words)
        for i in range(len(tokens) - n + 1):
            if all(tokens[i + j] == words[j] for j in range(n)):
                for j in range(n):
                    hit[i + j] = True
                    joined[i + j] = j > 0
    for i, w in enumerate(tokens):
        for t, prefix in terms:
            if w == t or (prefix and w.startswith(t)):
                hit[i] = True
    return hit, joined


def make_snippet(text: str, query: str, *, relaxed: bool = False,
                 tokens: int = SNIPPET_TOKENS) -> str:
    """The text (or `tokens` words of it around the first match) with the words that
    match the query in [brackets]; a matched phrase is one bracket. Matching folds case
    and diacritics and honours prefix* terms, as the FTS5 query did. (FTS5's own
    snippet() re-runs the query per row: 0.3 ms a hit on a 100k-row library.)"""
    low = text.lower()
    toks = [(m.start(), m.end(), _folded(m.group(0))) for m in WORD.finditer(low)]
    if not toks:
        return text
    phrases, terms = query_patterns(query, relaxed)
    if not phrases and not terms:
        hi = min(len(toks), tokens)
        return text[:toks[hi - 1][1]] + ("…" if hi < len(toks) else text[toks[hi - 1][1]:])
    hit, joined = _matches([t[2] for t in toks], phrases, terms)
    first = next((i for i, h in enumerate(hit) if h), 0)
    lo = max(0, min(first - 4, len(toks) - tokens)) if len(toks) > tokens else 0
    hi = min(len(toks), lo + tokens)
    out, pos = [], toks[lo][0]
    prefix = "…" if lo > 0 else text[:toks[0][0]]
    i = lo
    while i < hi:
        s, e, _ = toks[i]
        if hit[i]:
            j = i
            while j + 1 < hi and hit[j + 1] and joined[j + 1]:
                j += 1
            e = toks[j][1]
            while e < len(text) and unicodedata.category(text[e])[0] == "M":
                e += 1                          # a word's last marks ("नमस्ते") are its own
            out.append(text[pos:s] + MARK_OPEN + text[s:e] + MARK_CLOSE)
            pos, i = e, j + 1
        else:
            out.append(text[pos:e])
            pos, i = e, i + 1
    suffix = "…" if hi < len(toks) else text[pos:]
    return prefix + "".join(out) + suffix


def first_said(words: Iterable[tuple], query: str, *, relaxed: bool = False
               ) -> float | None:
    """The start of the first timed word (start, word[, end]) that the query matches, as
    make_snippet marks it (a phrase from its first word on); None when none does."""
    phrases, terms = query_patterns(query, relaxed)
    if not phrases and not terms:
        return None
    starts, tokens = [], []
    for start, word, *_ in words:
        for w in WORD.findall(word.lower()):
            starts.append(float(start))
            tokens.append(_folded(w))
    hit, _ = _matches(tokens, phrases, terms)
    return next((starts[i] for i, h in enumerate(hit) if h), None)


SENTENCE_END = re.compile(r"[.!?…。！？؟।]['\")»”]*$")


# Within a recognised line, a silence this long between two words also ends a sentence
# (the recogniser often writes two sentences as one line without a full stop), and so
# does a word timed this long: Whisper's word timings stretch a word over the silence
# before it. Chosen on benchmarks.spoken_search's dev split (benchmarks/README.md).
PAUSE_S = 0.5
STRETCHED_S = 0.7


def sentence_start(words: Sequence[tuple], t: float) -> float | None:
    """The start of the sentence (within a line's timed words, (start, word[, end]))
    holding the word at `t`: the word after the last one before it that ends a sentence
    or a pause (PAUSE_S, STRETCHED_S); None when that is the line's first sentence (the
    line's own start stands)."""
    out, opened, prev_end = None, False, None
    for start, word, *rest in words:
        if start > t:
            break
        end = rest[0] if rest else None
        if prev_end is not None and end is not None and (
                start - prev_end >= PAUSE_S or end - start >= STRETCHED_S):
            opened = True
        if opened:
            out, opened = float(start), False
        if start < t and SENTENCE_END.search(word.strip()):
            opened = True                   # the next word opens a sentence
        prev_end = end
    return out


def matched_terms(text: str, terms) -> set:
    """The single terms (folded word, is_prefix) of a query that occur in a text."""
    holds = _holder(text)
    return {(t, p) for t, p in terms if holds(t, p)}
