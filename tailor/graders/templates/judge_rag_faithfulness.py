"""Judge: RAG faithfulness: a judge model rates 1-10 whether the answer is supported by the retrieved context.

For context-based question answering: the model must answer from the passages it is given, and
say so when they do not hold the answer, rather than answer from memory or invent.

Record fields read:
    context           the retrieved passages: a string or a list of strings (also read from
                      "documents" or "passages"); when absent, the prompt itself (system and user
                      messages) is taken to hold the context
    reference_answer  a reference answer (optional), shown to the judge

The reward is the judge's rating N as (N - 1) / 9, the metric faithfulness; a judge error scores 0
with judge_error = 1, never a made-up score. Register TAILOR_JUDGE_URL, TAILOR_JUDGE_MODEL and
TAILOR_JUDGE_API_KEY with the grader, and a timeout for a batch of judge calls:
tailor/graders/judging.py says how.
"""

from tailor.graders.contract import (
    completion_of,
    field_of,
    prompt_of,
    reference_of,
    text_of,
)
from tailor.graders.judging import judge_batch, sections, transcript

INSTRUCTIONS = "Rate how faithful the response is to the context: is everything it claims supported there?"
CRITERIA = """\
- Every claim in the response is stated in, or directly follows from, the context.
- When the context does not hold the answer, the response says so instead of guessing.
- The response answers the question (a faithful answer to another question is not useful).
Scoring: 10 = every claim supported and the question answered; 7 = supported, with one small
unsupported detail; 4 = several unsupported claims; 1 = contradicts the context or is invented."""


def lambda_handler(event, context):
    return judge_batch(event, build_prompt, metric="faithfulness", context=context)


def build_prompt(sample):
    messages = prompt_of(sample)
    questions = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    return sections(INSTRUCTIONS,
                    ("Criteria", CRITERIA),
                    ("Context", context_text(sample, messages)),
                    ("Question", questions[-1] if questions else "(none)"),
                    ("A reference answer", reference_of(sample) or None),
                    ("Response to rate", completion_of(sample) or "(empty)"))


def context_text(sample, messages):
    for name in ("context", "documents", "passages"):
        value = field_of(sample, name)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list) and value:
            passages = [item.get("text", "") if isinstance(item, dict) else str(item) for item in value]
            return "\n\n".join(f"[{number}] {passage}" for number, passage in enumerate(passages, 1))
    return transcript(messages)
