"""Generic grader boilerplate: the contract explained, with a token-F1 reward to replace with yours.

A grader is called as AWS Lambda calls a function: lambda_handler(event, context), once per batch.

event: a list of samples, one per answer the model generated during training:

    [{"id": "a1b2-0",                                    # unique in the batch: echo it back
      "messages": [{"role": "system", "content": "..."},
                   {"role": "user", "content": "..."},
                   {"role": "assistant", "content": "<the generated answer>"}],   # always last
      "metadata": {"reference_answer": ..., "task_id": ..., ...},  # every other record field
      "reference_answer": ...}]                           # also here, for graders that read it here

context: Lambda's context object (context.get_remaining_time_in_millis(), context.function_name,
context.memory_limit_in_mb, context.invoked_function_arn).

Return one result per sample, in any order (they are matched by id):

    [{"id": "a1b2-0",
      "aggregate_reward_score": 0.8,                      # the training reward, a number (0-1 is usual)
      "metrics_list": [                                   # optional: shown per training step
          {"name": "token_f1", "value": 0.8, "type": "Reward"},
          {"name": "length", "value": 42, "type": "Metric"}]}]

What goes wrong, and what happens:
- an exception on the batch: Tailor grades the samples one by one; the ones that still raise get
  reward 0 with the exception as the error, the others are scored normally;
- a missing id, a score that is not a number (or is NaN), a malformed item: that sample gets 0;
- running past the grader's timeout or memory limit: the whole batch gets 0.
Every such 0 comes with an error, shown by `tailor graders test` and in the training log.
print() and logging go to the grader's log (stderr), never into the result.

Rewards work best when they are fast, deterministic, and give partial credit: a reward that is
almost always 0 (or always 1) gives training nothing to learn from.

    tailor graders create my-grader --file generic.py
    tailor graders test my-grader --data train.jsonl    # try it on records before training
"""

import json

from tailor.evaluate.metrics import exact_match, token_f1
from tailor.graders.contract import completion_of, reference_of


def lambda_handler(event, context):
    return [grade(sample) for sample in event]


def grade(sample):
    answer = completion_of(sample)  # the last assistant message's text
    reference = reference_of(sample)  # from metadata, or the top level
    if reference is None:
        raise ValueError("the record has no reference_answer")  # scores 0, with this message
    if not isinstance(reference, str):
        reference = json.dumps(reference)  # an object or number: compare with its JSON text

    # Replace this with what "good" means for your task. The evaluation metrics are plain
    # functions (tailor.evaluate.metrics: exact_match, token_f1, rouge_l), so a reward here and an
    # evaluation metric of the same name agree.
    reward = token_f1(answer, reference)

    return {
        "id": sample["id"],
        "aggregate_reward_score": reward,
        "metrics_list": [
            {"name": "token_f1", "value": reward, "type": "Reward"},
            {"name": "exact_match", "value": exact_match(answer, reference), "type": "Metric"},
            {"name": "length", "value": len(answer.split()), "type": "Metric"},
        ],
    }
