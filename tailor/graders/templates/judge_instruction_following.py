"""Judge: instruction following: a judge model rates 1-10 how well the answer obeys the prompt's instructions.

The judge model is reached through an OpenAI-compatible chat-completions API, by default Tailor's
own serving API; configure it with environment variables (in the server's environment, or per
grader with `tailor graders create NAME --file THIS.py --env NAME=VALUE`):
    TAILOR_JUDGE_URL      base URL, default http://127.0.0.1:8080/v1
    TAILOR_JUDGE_MODEL    the judge: a model id, custom model or deployment name (required)
    TAILOR_JUDGE_API_KEY  bearer key (for Tailor: the api_key `tailor keys create` prints)

Record fields read: the messages (system and user turns hold the instructions);
reference_answer, when present, is shown to the judge as an example of a compliant answer.

The rating N becomes the reward (N - 1) / 9, the metric instruction_following. A judge that cannot
be reached or gives no parsable rating scores 0 with judge_error = 1 (and the reason in the log):
never a made-up score. Edit INSTRUCTIONS and CRITERIA to say what matters for your task.
Give the grader a timeout long enough for a batch of judge calls (e.g. --timeout 300).
"""

from tailor.graders.contract import completion_of, prompt_of, reference_of, text_of
from tailor.graders.judging import judge_batch

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
    conversation = "\n".join(f"{m['role'].upper()}: {text_of(m.get('content'))}" for m in prompt_of(sample))
    parts = [INSTRUCTIONS, "", "[Criteria]", CRITERIA, "", "[Conversation with the instructions]", conversation]
    reference = reference_of(sample)
    if reference:
        parts += ["", "[An example of a compliant response]", str(reference)]
    parts += ["", "[Response to rate]", completion_of(sample) or "(empty)"]
    return "\n".join(parts)
