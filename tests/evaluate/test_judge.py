"""The judge's prompt, the parsing of its rating, and what happens to output that does not parse.

The scripted backend here is a fake for the pure logic of retries; the same paths run against a
real served model in test_run.py.
"""

from __future__ import annotations

import pytest

from tailor.evaluate.backends import Failure
from tailor.evaluate.judge import JUDGE_METRICS, judge_messages, normalized, parse_rating, rate


@pytest.mark.parametrize(("reply", "expected"), [
    ("It matches the reference.\nRating: 9", (9, "It matches the reference.")),
    ("Good.\n**Rating:** 7/10", (7, "Good.")),
    ("rating: 10", (10, "(the judge gave no reasoning)")),
    ("First I thought Rating: 3 but no.\nRating: 4", (4, "First I thought Rating: 3 but no.")),
    ("Rating: 5.\n", (5, "(the judge gave no reasoning)")),
])
def test_a_rating_line_parses(reply, expected):
    assert parse_rating(reply) == expected


@pytest.mark.parametrize("reply", ["I'd say 8 out of 10.", "Rating: 0", "Rating: 11", "Rating: nine", "",
                                   "Rating: 7 because it is fine"])
def test_anything_else_does_not_parse(reply):
    assert parse_rating(reply) is None


def test_ratings_normalize_from_one_to_ten_onto_zero_to_one():
    assert [normalized(r) for r in (1, 10)] == [0.0, 1.0]
    assert normalized(7) == pytest.approx(2 / 3)


def test_the_reference_goes_only_to_criteria_that_use_it():
    with_reference = judge_messages("Builtin.Correctness", "Q?", "A.", "The reference.")[1]["content"]
    without = judge_messages("Builtin.Coherence", "Q?", "A.", "The reference.")[1]["content"]
    assert "[Reference answer]\nThe reference." in with_reference and "The reference." not in without
    assert with_reference.endswith("Rating: N\nwhere N is a whole number from 1 to 10.")
    assert len(JUDGE_METRICS) == 8


class Scripted:
    """Replies from a list per round; records what it was asked."""

    label = "scripted"

    def __init__(self, *rounds):
        self.rounds, self.asked = list(rounds), []

    def chat(self, conversations, generation, on_reply=None):
        self.asked.append(conversations)
        return self.rounds.pop(0)[: len(conversations)]


def test_unparsable_output_is_asked_again_then_recorded_missing():
    judge = Scripted(["Great answer!", "Fine.\nRating: 8", "meh"], ["Sorry.\nRating: 6", "still no rating"])
    items = [("Q1", "A1", "R1"), ("Q2", "A2", "R2"), ("Q3", "A3", "R3")]
    first, second, third = rate(judge, "Builtin.Correctness", items, retries=1)

    # Only the unparsable ones were asked again, in the same conversation plus a reminder.
    retry = judge.asked[1]
    assert len(retry) == 2 and retry[0][-2] == {"role": "assistant", "content": "Great answer!"}
    assert "Rating: N" in retry[0][-1]["content"]
    assert (first.rating, first.value, first.explanation) == (6, pytest.approx(5 / 9), "Sorry.")
    assert (second.rating, second.explanation) == (8, "Fine.")
    assert third.value is None and third.rating is None
    assert "No parsable rating after 2 attempts" in third.explanation and "still no rating" in third.explanation


def test_a_judge_that_cannot_be_reached_gives_missing_scores_with_the_reason():
    judge = Scripted([Failure("http://judge answered HTTP 503: busy")])
    (score,) = rate(judge, "Builtin.Helpfulness", [("Q", "A", None)])
    assert score.value is None and "HTTP 503" in score.explanation
    assert len(judge.asked) == 1  # a failed request is not retried as if it were bad output
