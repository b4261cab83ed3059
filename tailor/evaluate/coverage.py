"""Data coverage: for each evaluation question, how many training records are about its topic.

A fine-tuned model answers badly what its training data barely mentions; counting, before any
training, how many records are about each evaluation question's topic predicts those weak
questions (in the write-up this feature answers, a fine-tuned model's weakest question was about a
topic that only 1 of its 85 training pairs mentioned).

The measure is meant to be read and checked by a person, so every step is a plain rule:

1. **Words.** Lowercase runs of letters and digits, lightly stemmed (``agents`` = ``agent``,
   ``tuning`` = ``tuned`` = ``tune``); stopwords (including question words such as *what*, *how*,
   *can*, *does* and filler verbs such as *use*, *help*) are dropped.
2. **Key terms.** A question's key terms are the words of its prompt that are not *generic*, that
   is, that at most a quarter of the training records contain (or at most 2, for tiny data):
   "Amazon Bedrock" is in nearly every record of a Bedrock FAQ and says nothing about a
   question's topic. (A prompt made only of generic words, "What is Amazon Bedrock?", keeps them.)
   When the question has a reference answer, the key terms are narrowed to those the reference
   also uses, because an answer restates its subject ("Agents for Amazon Bedrock are ...") and
   leaves out the incidental words of the question. A term's weight is its BM25 IDF over the
   training records, ``ln(1 + (N - df + 0.5) / (df + 0.5))``; key terms are listed rarest first,
   and those no record contains are the *missing terms*, the strongest sign of a gap.
3. **About.** A training record is about a term when the term is in the record's prompt side (its
   user turns, ``prompt`` or question) or appears in it at least twice. A passing mention in an
   answer ("... or creating and testing an agent") teaches a model little about the term.
4. **Covering.** A record covers a question when the key terms it is about carry at least a third
   of the question's total key-term IDF weight. A third, not a half, because a question usually
   names a topic and a narrower ask ("Which vector databases can Knowledge Bases use?"): a record
   about the topic alone must count, while a record about one common side word of a question on
   a rare topic must not ("Can I export Quokka dashboards to S3?" is not covered by records about
   S3). Missing terms count in the total, so a question about something the data never names is
   covered by nothing. A question that at most ``threshold`` records cover is *under-covered*.

BM25 (``rank_bm25.BM25Okapi`` over the same words, queried with the key terms) only ranks the
records shown as a question's ``top_matches``; it does not decide the count.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor.errors import InvalidInput

GENERIC_FRACTION = 0.25  # a word in more than this share of the training records names no topic
COVERING_SHARE = 1 / 3  # share of a question's key-term weight a record must be about to cover it
MATCH_TEXT_CHARS = 160

METHOD = (
    "A training record covers a question when it is about (has in its prompt, or mentions at least "
    "twice) the question's key terms carrying at least a third of their IDF weight, where key terms are "
    "the prompt's stemmed non-stopwords found in at most a quarter of the training records "
    "(narrowed to those the reference answer also uses, when there is one); BM25 only ranks the "
    "top matches."
)

# Function words, question words and verbs that fit any question; what is left names the topic.
STOPWORDS = frozenset("""
a about above after again against all almost also although always am among an and another any anyone
anything are aren around as at be became because become been before being below between both but by
can cannot could couldn did didn do does doesn doing don done down during each either else enough etc
even ever every few for from further get gets getting give given go goes going got had has hasn have
haven having he her here hers herself him himself his how however i if in into is isn it its itself
just kind know let like lot made make makes making many may me might more most much must my myself
need needs neither no nor not now of off often on once one only or other others otherwise our ours
ourselves out over own per please possible rather really same say see seem shall she should shouldn
since so some something such sure take tell than that the their theirs them themselves then there
these they thing things this those though through thus to too toward under until up upon us use used
uses using usually very via want was wasn way ways we well were weren what whatever when whenever
where whether which while who whom whose why will with within without won would wouldn yes yet you
your yours yourself yourselves help helps helped work works working provide provides provided able
offer offers available keep keeps today nowadays currently
""".split())

_WORD = re.compile(r"[a-z0-9]+")
_UNDOUBLE = tuple(letter * 2 for letter in "bdgmnprt")


@dataclass(frozen=True)
class _Record:
    """A training record's words: all of them, and those on its prompt side."""

    line: int
    text: str
    terms: Counter
    prompt_terms: frozenset


def coverage_report(training_path: str | Path, evaluation_path: str | Path, *, threshold: int = 1,
                    top: int = 3) -> dict:
    """The coverage of each question of ``evaluation_path`` by the records of ``training_path``.

    Training data may be JSON Lines in any training format (messages, prompt/completion, input)
    or a JSON array of question/answer or sentence1/sentence2 pairs; evaluation data is JSON Lines
    of ``{"prompt", "referenceResponse"?, "category"?}`` or any of the training formats. A record's
    ``line`` is its line in a JSON Lines file, or its position (from 1) in a JSON array.
    ``InvalidInput`` names the file and the line (or array item) of anything unreadable.
    """
    training = [(line, _record_text(item, where)) for line, where, item in _read_items(training_path)]
    questions = [dict(_question(item, where), line=line) for line, where, item in _read_items(evaluation_path)]
    return _coverage(training, questions, threshold=threshold, top=top,
                     training_file=str(training_path), evaluation_file=str(evaluation_path))


def coverage_from_records(training_texts: list[str | dict], questions: list[dict], *, threshold: int = 1,
                          top: int = 3) -> dict:
    """``coverage_report`` on data already in memory. A training record is a string (all of it
    counts as answer side, so the record is about a term it mentions at least twice) or a record
    dict in any training format; a question is a dict with ``prompt`` and optionally
    ``referenceResponse``, ``category`` and ``line`` (its position from 1 when absent)."""
    training = []
    for number, record in enumerate(training_texts, start=1):
        if isinstance(record, str):
            training.append((number, (record, "")))
        else:
            training.append((number, _record_text(record, f"training record {number}")))
    for index, question in enumerate(questions):
        if not isinstance(question, dict) or not isinstance(question.get("prompt"), str):
            raise InvalidInput(f"question {index}: expected an object with a string 'prompt'.")
    return _coverage(training, questions, threshold=threshold, top=top, training_file="", evaluation_file="")


def render_text(report: dict) -> str:
    """A short table for a terminal: per question its covering count, a flag and its key terms,
    then one line naming the under-covered questions."""
    threshold = report["threshold"]
    questions = report["questions"]
    source = f" by {report['training_file']}" if report.get("training_file") else ""
    lines = [f"Training-data coverage{source} ({report['training_records']} records)",
             f"{'line':>5}  {'covering':>8}  {'flag':<5} key terms"]
    for question in questions:
        terms = ", ".join(
            term + (" (missing)" if term in question["missing_terms"] else "") for term in question["key_terms"]
        ) or "(no key terms)"
        flag = "LOW" if question["under_covered"] else ""
        lines.append(f"{question['line']:>5}  {question['covering_records']:>8}  {flag:<5} {terms}")
        lines.append(f"{'':>23}{_shorten(question['prompt'], 70)}")
    flagged = [question for question in questions if question["under_covered"]]
    noun = "record" if threshold == 1 else "records"
    summary = f"{len(flagged)} of {len(questions)} questions are covered by ≤{threshold} training {noun}"
    if flagged:
        summary += ": " + "; ".join(f"line {question['line']} ({', '.join(question['key_terms'][:3]) or '-'})"
                                    for question in flagged)
    lines.append(summary + ".")
    return "\n".join(lines)


def tokens(text: str) -> list[str]:
    """The stemmed words of ``text`` that are not stopwords, in order."""
    return [term for term, _ in _words(text)]


def stem(word: str) -> str:
    """A light suffix stripper, enough to make plurals and -ing/-ed forms meet their base word."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if word.endswith(_UNDOUBLE):  # embedded -> embed, running -> run
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:  # create, created, creating -> creat
        word = word[:-1]
    return word


_STOPWORD_STEMS = frozenset(stem(word) for word in STOPWORDS)  # helping -> help, offered -> offer


# -- the measure ----------------------------------------------------------------------------------

def _coverage(training: list[tuple[int, tuple[str, str]]], questions: list[dict], *, threshold: int, top: int,
              training_file: str, evaluation_file: str) -> dict:
    records = [_Record(line=line, text=text, terms=Counter(tokens(text)),
                       prompt_terms=frozenset(tokens(prompt_side)))
               for line, (text, prompt_side) in training]
    if not records:
        raise InvalidInput("The training data holds no records.")
    count = len(records)
    document_frequency = Counter(term for record in records for term in record.terms)
    generic_above = max(2, GENERIC_FRACTION * count)
    bm25 = _bm25(records)

    def idf(term: str) -> float:  # the always-positive BM25 IDF; a missing term gets the largest
        frequency = document_frequency[term]
        return math.log(1 + (count - frequency + 0.5) / (frequency + 0.5))

    rows = []
    for index, question in enumerate(questions):
        prompt = question["prompt"]
        reference = question.get("referenceResponse")
        key_terms, surface = _key_terms(prompt, reference if isinstance(reference, str) else None,
                                        lambda term: document_frequency[term] > generic_above)
        key_terms.sort(key=lambda term: (-idf(term), term))
        weight = {term: idf(term) for term in key_terms}
        total = sum(weight.values())
        covering = [record for record in records if total > 0 and
                    sum(weight[term] for term in key_terms if _is_about(record, term)) >= COVERING_SHARE * total]
        scores = bm25.get_scores(key_terms) if bm25 is not None and key_terms else [0.0] * count
        ranked = sorted(range(count), key=lambda position: (-scores[position], position))
        top_matches = [
            {"line": records[position].line, "score": round(float(scores[position]), 4),
             "matched_terms": [surface[term] for term in key_terms if records[position].terms[term]],
             "text": _shorten(records[position].text, MATCH_TEXT_CHARS)}
            for position in ranked[:top] if scores[position] > 0
        ]
        rows.append({
            "index": index,
            "line": question.get("line", index + 1),
            "prompt": prompt,
            "category": question.get("category"),
            "key_terms": [surface[term] for term in key_terms],
            "missing_terms": [surface[term] for term in key_terms if document_frequency[term] == 0],
            "covering_records": len(covering),
            "under_covered": len(covering) <= threshold,
            "top_matches": top_matches,
        })
    return {"threshold": threshold, "training_records": count, "training_file": training_file,
            "evaluation_file": evaluation_file, "method": METHOD, "questions": rows,
            "under_covered": sum(row["under_covered"] for row in rows)}


def _is_about(record: _Record, term: str) -> bool:
    return term in record.prompt_terms or record.terms[term] >= 2


def _key_terms(prompt: str, reference: str | None, generic: Callable[[str], bool]) -> tuple[list[str], dict[str, str]]:
    """The question's key terms (stems) and, for each, the word the question spelled it with."""
    spelled = _first_spellings(prompt)
    if not spelled and reference:  # a prompt of stopwords only: the reference is all there is to go on
        spelled = _first_spellings(reference)
        reference = None
    terms = [term for term in spelled if not generic(term)] or list(spelled)  # all generic: keep them
    if reference:
        in_reference = _first_spellings(reference)
        terms = [term for term in terms if term in in_reference] or terms
    return terms, spelled


def _first_spellings(text: str) -> dict[str, str]:
    spelled: dict[str, str] = {}
    for term, word in _words(text):
        spelled.setdefault(term, word)
    return spelled


def _words(text: str) -> list[tuple[str, str]]:
    """(stem, word) for each word of ``text`` that is neither a stopword nor a form of one."""
    pairs = [(stem(word), word) for word in _WORD.findall(text.lower()) if len(word) > 1 and word not in STOPWORDS]
    return [(term, word) for term, word in pairs if term not in _STOPWORD_STEMS]


def _bm25(records: list[_Record]):
    from rank_bm25 import BM25Okapi

    corpus = [list(record.terms.elements()) for record in records]
    if not any(corpus):  # BM25Okapi divides by the average length
        return None
    return BM25Okapi(corpus)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- reading files --------------------------------------------------------------------------------

def _read_items(path: str | Path) -> list[tuple[int, str, Any]]:
    """(line, where, item) for each item: a JSON array's items numbered from 1, or the non-blank
    lines of a JSON Lines file with their line numbers; ``where`` names the place in messages."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: not UTF-8 text (byte offset {error.start}).") from None
    except OSError as error:
        raise InvalidInput(f"{path}: cannot be read: {error.strerror or error}.") from None
    items: list[tuple[int, str, Any]] = []
    if text.lstrip().startswith("["):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInput(f"{path}: line {error.lineno}: invalid JSON: {error.msg} "
                               f"(column {error.colno}).") from None
        items = [(number, f"{path}: item {number}", item) for number, item in enumerate(whole, start=1)]
    else:
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                items.append((number, f"{path}: line {number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise InvalidInput(f"{path}: line {number}: invalid JSON: {error.msg} "
                                   f"(column {error.colno}).") from None
    if not items:
        raise InvalidInput(f"{path}: holds no records.")
    return items


def _record_text(item: Any, where: str) -> tuple[str, str]:
    """(all of the record's text, the text of its prompt side) for a training record of any format."""
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: expected a JSON object, found {_json_type(item)}.")
    everything: list[str] = []
    prompt_side: list[str] = []
    if isinstance(item.get("system"), (str, list)):
        everything.append(_content_text(item["system"]))
    for role, content in _turns(item, where):
        everything.append(content)
        if role == "user":
            prompt_side.append(content)
    question_key = next((key for key in ("prompt", "question", "sentence1") if isinstance(item.get(key), str)), None)
    if question_key is None and isinstance(item.get("output"), str):
        question_key = "input"  # {"input", "output"} is a pair; {"input"} alone is unlabeled text
    for key, value in item.items():
        if key not in ("messages", "system") and isinstance(value, str):
            everything.append(value)
            if key == question_key:
                prompt_side.append(value)
    if not any(part.strip() for part in everything):
        raise InvalidInput(f"{where}: no text: expected messages, prompt/completion, input, "
                           "question/answer or sentence1/sentence2.")
    return "\n".join(everything), "\n".join(prompt_side)


def _question(item: Any, where: str) -> dict:
    """The question an evaluation record asks: its prompt, reference answer and category."""
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: expected a JSON object, found {_json_type(item)}.")
    category = item.get("category") if isinstance(item.get("category"), str) else None
    turns = _turns(item, where)
    if turns:
        users = [position for position, (role, _) in enumerate(turns) if role == "user"]
        if not users:
            raise InvalidInput(f"{where}: the conversation has no user turn to ask.")
        answers = [content for role, content in turns[users[-1] + 1:] if role == "assistant"]
        return {"prompt": turns[users[-1]][1], "referenceResponse": answers[0] if answers else None,
                "category": category}
    for question_key, answer_key in (("prompt", "referenceResponse"), ("prompt", "completion"),
                                     ("question", "answer"), ("sentence1", "sentence2"), ("input", "output")):
        if isinstance(item.get(question_key), str):
            answer = item.get(answer_key, item.get("reference_answer"))
            return {"prompt": item[question_key], "referenceResponse": answer if isinstance(answer, str) else None,
                    "category": category}
    raise InvalidInput(f"{where}: no question: expected a string 'prompt' (or messages with a user turn, "
                       "question, sentence1 or input).")


def _turns(item: dict, where: str) -> list[tuple[str, str]]:
    """(role, text) for each message of a ``messages`` record; [] for other formats."""
    messages = item.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise InvalidInput(f"{where}: 'messages' must be a list.")
    turns = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), (str, list)):
            raise InvalidInput(f"{where}: messages[{position}] needs a 'role' and a 'content'.")
        turns.append((str(message.get("role")), _content_text(message["content"])))
    return turns


def _content_text(content: str | list) -> str:
    """A message's text: a string, or the ``text`` of Converse-style content blocks."""
    if isinstance(content, str):
        return content
    return "\n".join(block["text"] for block in content
                     if isinstance(block, dict) and isinstance(block.get("text"), str))


def _json_type(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "an array"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
