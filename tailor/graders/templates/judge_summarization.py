"""Judge: summarization of multi-turn dialogs: a judge model rates 1-10 how faithful, complete and concise a summary is.

Record fields read:
    dialog            the dialog to summarize: a string, or a list of {"role"/"speaker", "content"/"text"}
                      turns; when absent, the prompt's messages are the dialog
    reference_answer  a reference summary (optional), shown to the judge

The reward is the judge's rating N as (N - 1) / 9, the metric summary_quality; a judge error scores
0 with judge_error = 1, never a made-up score. Register TAILOR_JUDGE_URL, TAILOR_JUDGE_MODEL and
TAILOR_JUDGE_API_KEY with the grader, and a timeout for a batch of judge calls:
tailor/graders/judging.py says how. Edit CRITERIA to say what a good summary holds for your dialogs.
"""

from tailor.graders.contract import (
    completion_of,
    field_of,
    prompt_of,
    reference_of,
    text_of,
)
from tailor.graders.judging import judge_batch, sections, transcript

INSTRUCTIONS = "Rate the summary of the dialog below."
CRITERIA = """\
- Faithful: every statement in the summary is supported by the dialog; nothing is invented or
  attributed to the wrong speaker.
- Complete: the key points, decisions, open questions and action items (with their owners) are there.
- Concise: no repetition and no small talk; shorter than the dialog.
Scoring: 10 = faithful, complete and concise; 6 = faithful but misses a key point or is padded;
3 = misses most key points; 1 = contradicts or invents. Any invented fact caps the rating at 3."""


def lambda_handler(event, context):
    return judge_batch(event, build_prompt, metric="summary_quality", context=context)


def build_prompt(sample):
    return sections(INSTRUCTIONS,
                    ("Criteria", CRITERIA),
                    ("Dialog", dialog_text(sample)),
                    ("A reference summary", reference_of(sample) or None),
                    ("Summary to rate", completion_of(sample) or "(empty)"))


def dialog_text(sample):
    dialog = field_of(sample, "dialog")
    if isinstance(dialog, str):
        return dialog
    if isinstance(dialog, list):
        return "\n".join(f"{turn.get('speaker') or turn.get('role', '?')}: "
                         f"{text_of(turn.get('content', turn.get('text')))}" for turn in dialog)
    return transcript(prompt_of(sample))
