"""How the two text graders compare ``input`` with ``reference``.

``string_check`` (``eq``, ``ne``, ``like``, ``ilike``) and ``similarity``, the ``text_similarity``
metrics: ``fuzzy_match`` computed here, BLEU / GLEU / METEOR through NLTK, ROUGE through
rouge-score, cosine through Tailor's bundled encoder. ``METRIC_NOTES`` says how each is computed.
"""

from __future__ import annotations

import re
from typing import Any


def string_check(operation: str, given: str, reference: str) -> float:
    if operation == "eq":
        return float(given == reference)
    if operation == "ne":
        return float(given != reference)
    if operation == "like":
        return float(reference in given)
    return float(reference.casefold() in given.casefold())  # ilike


def similarity(metric: str, given: str, reference: str) -> float:
    """``evaluation_metric`` of ``given`` against ``reference``, in 0–1 (cosine may stray a rounding
    error past it). See ``METRIC_NOTES``."""
    if metric == "fuzzy_match":
        return fuzzy_match(given, reference)
    if metric == "cosine":
        from tailor.evaluate.metrics import embedding_cosine

        return embedding_cosine([given], [reference])[0]
    if metric in ("rouge_1", "rouge_2", "rouge_l"):
        from tailor.evaluate.metrics import rouge

        return rouge([given], [reference])[0]["rouge" + metric[-1].replace("l", "L")]
    if metric.startswith("rouge_"):
        return _rouge_n(int(metric[-1]), given, reference)
    hypothesis, references = given.split(), [reference.split()]
    if not hypothesis or not references[0]:
        return float(not hypothesis and not references[0])
    if metric == "bleu":
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        return float(sentence_bleu(references, hypothesis, smoothing_function=SmoothingFunction().method1))
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu(references, hypothesis))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        return float(meteor_score(references, hypothesis, wordnet=_NoSynonyms()))
    raise ValueError(f"unknown metric {metric!r}")


METRIC_NOTES = {
    "fuzzy_match": "rapidfuzz's fuzz.ratio on default-processed text (lowercase, non-alphanumerics as spaces): "
                   "2 x longest common subsequence / total length, computed here (no rapidfuzz dependency)",
    "bleu": "NLTK sentence BLEU on whitespace tokens, 1-4-grams equally weighted, smoothing method 1",
    "gleu": "NLTK sentence GLEU on whitespace tokens (1-4-grams)",
    "meteor": "NLTK METEOR on whitespace tokens, exact and Porter-stem matches; no WordNet synonym stage "
              "(Tailor ships no WordNet data)",
    "rouge_1": "F-measure, rouge-score with the Porter stemmer (tailor.evaluate.metrics: Rouge1)",
    "rouge_2": "F-measure, rouge-score with the Porter stemmer (tailor.evaluate.metrics: Rouge2)",
    "rouge_3": "F-measure, rouge-score with the Porter stemmer", "rouge_4": "the same, 4-grams",
    "rouge_5": "the same, 5-grams",
    "rouge_l": "F-measure of the longest common subsequence (tailor.evaluate.metrics: RougeL)",
    "cosine": "cosine of sentence embeddings from Tailor's bundled encoder, all-MiniLM-L6-v2 "
              "(tailor.evaluate.metrics: EmbeddingCosine), not OpenAI's text-embedding-3-large",
}


class _NoSynonyms:
    """METEOR's WordNet stage, without WordNet: no word has synonyms."""

    def synsets(self, *args, **kwargs) -> list:
        return []


_ROUGE_N: dict[int, Any] = {}


def _rouge_n(n: int, given: str, reference: str) -> float:
    if n not in _ROUGE_N:
        from rouge_score import rouge_scorer

        _ROUGE_N[n] = rouge_scorer.RougeScorer([f"rouge{n}"], use_stemmer=True)  # as metrics.rouge does
    return float(_ROUGE_N[n].score(reference, given)[f"rouge{n}"].fmeasure)


_NOT_ALNUM = re.compile(r"[^0-9a-zA-Z\u00C0-\uFFFF]+")


def _processed(text: str) -> str:
    """rapidfuzz's ``utils.default_process``: lowercase, non-alphanumerics to spaces, trimmed."""
    return _NOT_ALNUM.sub(" ", text).lower().strip()


def fuzzy_match(given: str, reference: str) -> float:
    """Normalized Indel similarity of the processed texts: 2 * LCS / (len a + len b)."""
    first, second = _processed(given), _processed(reference)
    if not first and not second:
        return 1.0
    if not first or not second:
        return 0.0
    return 2 * _lcs_length(first, second) / (len(first) + len(second))


def _lcs_length(first: str, second: str) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix/Hyyrö) on Python ints."""
    masks: dict[str, int] = {}
    for position, character in enumerate(first):
        masks[character] = masks.get(character, 0) | (1 << position)
    full = (1 << len(first)) - 1
    row = full
    for character in second:
        matches = row & masks.get(character, 0)
        row = ((row + matches) | (row - matches)) & full
    return len(first) - bin(row).count("1")
