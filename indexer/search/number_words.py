"""Numbers said as words and written as digits are the same word to search.

Whisper writes most numbers as digits ("Press 0 for the operator", "Presione 0 para
comunicarse"), while people type them either way ("press zero", "cero operadora"), and
the reverse happens too (a subtitle track says "five", the query "5"). A query word that
is a number word in one of the library's languages gets its digits as another form, and
a query number gets the number words of the library's languages, the way word_forms
gives a word its inflections.

Single words only: 0-20, the tens, 100 and 1000 (a number of several words, "twenty
five" or "dix-sept", is more than one token on either side). Number words that are also
articles or pronouns ("un", "una", "ein", "one": they are stopwords; Dutch "een") are left
alone in both directions: "un chien" is not "1 chien".
"""
from __future__ import annotations

import functools

from indexer.search.query_text import STOPWORDS, fold, query_patterns

_TENS = (30, 40, 50, 60, 70, 80, 90, 100, 1000)

# language -> words for 0..20 then the _TENS, in order; "a/b" gives two words one value
_WORDS = {
    "en": "zero one two three four five six seven eight nine ten eleven twelve thirteen "
          "fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty "
          "sixty seventy eighty ninety hundred thousand",
    "es": "cero uno/una dos tres cuatro cinco seis siete ocho nueve diez once doce trece "
          "catorce quince dieciséis diecisiete dieciocho diecinueve veinte treinta cuarenta "
          "cincuenta sesenta setenta ochenta noventa cien/ciento mil",
    "fr": "zéro un/une deux trois quatre cinq six sept huit neuf dix onze douze treize "
          "quatorze quinze seize - - - vingt trente quarante cinquante soixante - - - "
          "cent mille",
    "it": "zero uno/una due tre quattro cinque sei sette otto nove dieci undici dodici "
          "tredici quattordici quindici sedici diciassette diciotto diciannove venti trenta "
          "quaranta cinquanta sessanta settanta ottanta novanta cento mille",
    "de": "null eins/ein/eine zwei drei vier fünf sechs sieben acht neun zehn elf zwölf "
          "dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig dreißig "
          "vierzig fünfzig sechzig siebzig achtzig neunzig hundert tausend",
    "pt": "zero um/uma dois/duas três quatro cinco seis sete oito nove dez onze doze treze "
          "catorze/quatorze quinze dezesseis dezessete dezoito dezenove vinte trinta "
          "quarenta cinquenta sessenta setenta oitenta noventa cem/cento mil",
    "nl": "nul - twee drie vier vijf zes zeven acht negen tien elf twaalf dertien veertien "
          "vijftien zestien zeventien achttien negentien twintig dertig veertig vijftig "
          "zestig zeventig tachtig negentig honderd duizend",
    "ru": "ноль/нуль один/одна/одно два/две три четыре пять шесть семь восемь девять десять "
          "одиннадцать двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать "
          "восемнадцать девятнадцать двадцать тридцать сорок пятьдесят шестьдесят семьдесят "
          "восемьдесят девяносто сто тысяча",
}


@functools.lru_cache(maxsize=None)
def _tables() -> dict[str, tuple[dict[str, str], dict[str, tuple[str, ...]]]]:
    """language -> (folded word -> digits, digits -> folded words); stopwords left out."""
    values = [str(n) for n in range(21)] + [str(n) for n in _TENS]
    out = {}
    for lang, text in _WORDS.items():
        entries = text.split()
        assert len(entries) == len(values), lang
        to_digits: dict[str, str] = {}
        to_words: dict[str, tuple[str, ...]] = {}
        for value, entry in zip(values, entries):
            words = [f for w in entry.split("/") if w != "-" and (f := fold(w)) not in STOPWORDS]
            for w in words:
                to_digits[w] = value
            if words:
                to_words[value] = tuple(words)
        out[lang] = (to_digits, to_words)
    return out


def number_forms(query: str, languages) -> dict[str, tuple[str, ...]]:
    """Folded query word -> its other spellings as a number, in the given languages
    (the library's): "cero" -> ("0",), "5" -> ("five", "cinco", ...)."""
    tables = [_tables()[lang] for lang in languages if lang in _WORDS]
    _, terms = query_patterns(query, False)
    out: dict[str, tuple[str, ...]] = {}
    for t, prefix in terms:
        if prefix or t in out:
            continue
        found: list[str] = []
        for to_digits, to_words in tables:
            alts = (to_digits[t],) if t in to_digits else to_words.get(t.lstrip("0") or "0", ())
            found += [a for a in alts if a != t and a not in found]
        if found:
            out[t] = tuple(found)
    return out
