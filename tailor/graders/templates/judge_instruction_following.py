"""Judge: instruction following: a judge model rates 1-10 how well the answer obeys the prompt's instructions.

Record fields read: the messages (system and user turns hold the instructions);
reference_answer, when present, is shown to the judge as an example of a compliant answer.

The reward is the judge's rating N as (N - 1) / 9, the metric instruction_following; a judge error
scores 0 with judge_error = 1, never a made-up score. Register TAILOR_JUDGE_URL, TAILOR_JUDGE_MODEL
and TAILOR_JUDGE_API_KEY with the grader, and a timeout for a batch of judge calls:
tailor/graders/judging.py says how. Edit INSTRUCTIONS and CRITERIA to say what matters for your
task.
"""

from tailor.graders.contract import completion_of, prompt_of, reference_of
from tailor.graders.judging import judge_batch, sections, transcript

INSTRUCTIONS = "Rate how well the response follows the instructions the user (and the system prompt) gave."
CRITERIA = """\
- Every explicit instruction is followed: format, length, language, style, things to include or avoid.
- The task asked for is actually done, not only talked about.
- Nothing the instructions forbid appears in the response.
Scoring: 10 = every instruction followed exactly; 7 = one minor slip; 4 = several instructions
missed or one major one; 1 = the instructions are ignored."""


def lambda_handler(event, context):
    return judge_batch(event, build_prompt, metric="instruction_following", context=context)


def build_prompt(sample):
    return sections(INSTRUCTIONS,
                    ("Criteria", CRITERIA),
                    ("Conversation with the instructions", transcript(prompt_of(sample))),
                    ("An example of a compliant response", reference_of(sample) or None),
                    ("Response to rate", completion_of(sample) or "(empty)"))
