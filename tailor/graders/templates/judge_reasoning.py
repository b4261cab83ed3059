"""Judge: reasoning evaluation: a judge model rates 1-10 the chain of thought and the final answer.

For specialized domains (law, medicine, finance, science) where an answer is only as good as the
reasoning behind it, and a verifier function is hard to write.

Record fields read: the messages (the question); reference_answer (optional: the correct answer,
and its reasoning if you have it), shown to the judge as the truth.

The reward is the judge's rating N as (N - 1) / 9, the metric reasoning_quality; a judge error
scores 0 with judge_error = 1, never a made-up score. Register TAILOR_JUDGE_URL, TAILOR_JUDGE_MODEL
and TAILOR_JUDGE_API_KEY with the grader, and a timeout for a batch of judge calls:
tailor/graders/judging.py says how. Edit DOMAIN and CRITERIA for your field.
"""

from tailor.graders.contract import completion_of, prompt_of, reference_of, text_of
from tailor.graders.judging import judge_batch, sections

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
    return sections(INSTRUCTIONS,
                    ("Criteria", CRITERIA),
                    ("Question", question),
                    ("Reference answer (the truth)", reference_of(sample) or None),
                    ("Response to rate", completion_of(sample) or "(empty)"))
