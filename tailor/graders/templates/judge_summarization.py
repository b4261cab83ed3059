"""Judge: summarization of multi-turn dialogs: a judge model rates 1-10 how faithful, complete and concise a summary is.

The judge model is reached through an OpenAI-compatible chat-completions API, by default Tailor's
own serving API; configure it with environment variables (in the server's environment, or per
grader with `tailor graders create NAME --file THIS.py --env NAME=VALUE`):
    TAILOR_JUDGE_URL      base URL, default http://127.0.0.1:8080/v1
    TAILOR_JUDGE_MODEL    the judge: a model id, custom model or deployment name (required)
    TAILOR_JUDGE_API_KEY  bearer key (for Tailor: the api_key `tailor keys create` prints)

Record fields read:
    dialog            the dialog to summarize: a string, or a list of {"role"/"speaker", "content"/"text"}
                      turns; when absent, the prompt's messages are the dialog
    reference_answer  a reference summary (optional), shown to the judge

The rating N becomes the reward (N - 1) / 9, the metric summary_quality. A judge that cannot be
reached or gives no parsable rating scores 0 with judge_error = 1 (and the reason in the log):
never a made-up score. Edit CRITERIA to say what a good summary holds for your dialogs.
Give the grader a timeout long enough for a batch of judge calls (e.g. --timeout 300).
"""

from tailor.graders.contract import completion_of, field_of, prompt_of, reference_of, text_of
from tailor.graders.judging import judge_batch

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
    parts = [INSTRUCTIONS, "", "[Criteria]", CRITERIA, "", "[Dialog]", dialog_text(sample)]
    reference = reference_of(sample)
    if reference:
        parts += ["", "[A reference summary]", str(reference)]
    parts += ["", "[Summary to rate]", completion_of(sample) or "(empty)"]
    return "\n".join(parts)


def dialog_text(sample):
    dialog = field_of(sample, "dialog")
    if isinstance(dialog, str):
        return dialog
    if isinstance(dialog, list):
        return "\n".join(f"{turn.get('speaker') or turn.get('role', '?')}: "
                         f"{text_of(turn.get('content', turn.get('text')))}" for turn in dialog)
    return "\n".join(f"{m['role'].upper()}: {text_of(m.get('content'))}" for m in prompt_of(sample))
