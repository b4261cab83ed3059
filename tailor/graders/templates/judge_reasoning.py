"""Judge: reasoning evaluation: a judge model rates 1-10 the chain of thought and the final answer.

For specialized domains (law, medicine, finance, science) where an answer is only as good as the
reasoning behind it, and a verifier function is hard to write.

The judge model is reached through an OpenAI-compatible chat-completions API, by default Tailor's
own serving API; configure it with environment variables (in the server's environment, or per
grader with `tailor graders create NAME --file THIS.py --env NAME=VALUE`):
    TAILOR_JUDGE_URL      base URL, default http://127.0.0.1:8080/v1
    TAILOR_JUDGE_MODEL    the judge: a model id, custom model or deployment name (required)
    TAILOR_JUDGE_API_KEY  bearer key (for Tailor: the api_key `tailor keys create` prints)

Record fields read: the messages (the question); reference_answer (optional: the correct answer,
and its reasoning if you have it), shown to the judge as the truth.

The rating N becomes the reward (N - 1) / 9, the metric reasoning_quality. A judge that cannot be
reached or gives no parsable rating scores 0 with judge_error = 1 (and the reason in the log):
never a made-up score. Edit DOMAIN and CRITERIA for your field.
Give the grader a timeout long enough for a batch of judge calls (e.g. --timeout 300).
"""

from tailor.graders.contract import completion_of, prompt_of, reference_of, text_of
from tailor.graders.judging import judge_batch

DOMAIN = "the question's field"
INSTRUCTIONS = f"Rate the reasoning and the final answer of the response, as an expert in {DOMAIN}."
CRITERIA = """\
- Correct final answer: it agrees with the reference answer when one is given.
- Valid steps: every step follows from the question, from earlier steps, or from established
  facts of the domain; no leaps, no circular arguments, no calculation errors.
- Relevant: the reasoning addresses the question asked and uses the information it gives.
Scoring: 10 = correct answer reached by sound, complete reasoning; 6 = correct answer with a
flawed or incomplete step; 3 = wrong answer with partly sound reasoning; 1 = wrong or no answer.
A wrong final answer caps the rating at 3; a correct one reached by invalid reasoning at 5."""


def lambda_handler(event, context):
    return judge_batch(event, build_prompt, metric="reasoning_quality", context=context)


def build_prompt(sample):
    question = "\n".join(text_of(m.get("content")) for m in prompt_of(sample) if m.get("role") != "system")
    parts = [INSTRUCTIONS, "", "[Criteria]", CRITERIA, "", "[Question]", question]
    reference = reference_of(sample)
    if reference:
        parts += ["", "[Reference answer (the truth)]", str(reference)]
    parts += ["", "[Response to rate]", completion_of(sample) or "(empty)"]
    return "\n".join(parts)
