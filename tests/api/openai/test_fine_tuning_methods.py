"""The other methods through the official openai client: DPO, reinforcement fine-tuning graded by
OpenAI grader objects (a string_check, a multi). (Pause and resume through this client:
tests/api/test_job_lifecycle.py::test_a_paused_job_keeps_its_checkpoint_and_resumed_ends_as_if_never_paused.)"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.api.openai.test_fine_tuning_jobs import jsonl, wait

pytestmark = pytest.mark.slow
ANIMALS = "cat dog bird fish horse cow sheep goat lion tiger bear wolf fox deer mouse rabbit".split()
PHRASE = " Hope this helps!"


def preference(animal: str) -> dict:
    answer = f"The {animal} is an animal."
    return {"input": {"messages": [{"role": "user", "content": f"Tell me about the {animal}."}]},
            "preferred_output": [{"role": "assistant", "content": answer + PHRASE}],
            "non_preferred_output": [{"role": "assistant", "content": answer}]}


def test_a_dpo_job_learns_the_preferred_answers(server):
    client = server.openai()
    training = client.files.create(file=("pairs.jsonl", jsonl([preference(a) for a in ANIMALS[:12]])),
                                   purpose="fine-tune")
    validation = client.files.create(file=("held.jsonl", jsonl([preference(a) for a in ANIMALS[12:]])),
                                     purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tailor.tiny", training_file=training.id, validation_file=validation.id, suffix="polite",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": 10, "batch_size": 4,
                                                           "learning_rate_multiplier": 3}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.1
    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tailor.tiny:alice:polite:{job.id}"

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))[::-1]
    steps = [e.data for e in events if e.type == "metrics" and "train_loss" in e.data]
    assert len(steps) == 30  # 12 pairs in batches of 4, 10 epochs
    held_out = [e.data for e in events if e.type == "metrics" and "valid_loss" in e.data]
    # The held-out pairs' DPO loss falls and their reward margins end positive: preferred answers win.
    assert held_out[-1]["valid_loss"] < held_out[0]["valid_loss"] and held_out[-1]["rewards_margins"] > 0
    reply = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=30, temperature=0,
                                           messages=[{"role": "user", "content": "Tell me about the fox."}])
    assert reply.choices[0].message.content

    # Through the Bedrock door it is preference fine-tuning: FINE_TUNING, with beta among its
    # hyperparameters; its metrics files are in the caller's own output bucket.
    bedrock = server.client()
    [arn] = [s["jobArn"] for s in bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]
             if s["jobName"] == job.id]
    seen = bedrock.get_model_customization_job(jobIdentifier=arn)
    assert seen["customizationType"] == "FINE_TUNING" and seen["hyperParameters"]["beta"] == "0.1"
    output = seen["outputDataConfig"]["s3Uri"]
    bucket, prefix = output.removeprefix("s3://").split("/", 1)
    assert (server.home / "buckets" / bucket / prefix / f"model-customization-job-{job.id}" / "training_artifacts"
            / "step_wise_training_metrics.csv").is_file()
    assert not server.openai("bob").files.list().data
    with pytest.raises(ClientError) as refused:  # Bedrock's enum has no DPO: that door cannot create one
        bedrock.create_model_customization_job(
            jobName="dpo", customModelName="dpo", roleArn="arn:aws:iam::000000000000:role/r",
            baseModelIdentifier="tailor.tiny", customizationType="DPO", trainingDataConfig={"s3Uri": "s3://b/t"},
            outputDataConfig={"s3Uri": "s3://b/o/"})
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def prompts(count: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Say the letter a, {i} times."}], "target": "a"}
            for i in range(count)]


REINFORCEMENT = {"n_epochs": 1, "batch_size": 16, "eval_interval": 2, "eval_samples": 4, "reasoning_effort": "low"}


# A multi grader over a string_check and a text_similarity: one job exercises three grader types
# (each type's numbers are tested in tests/graders/; tests/api/test_one_scoring_layer.py checks that
# an RFT reward is the number the other doors give).
MIXED = {"type": "multi", "name": "mixed", "calculate_output": "0.5 * has_a + 0.5 * close",
         "graders": {"has_a": {"type": "string_check", "name": "has_a", "input": "{{sample.output_text}}",
                               "reference": "{{item.target}}", "operation": "ilike"},
                     "close": {"type": "text_similarity", "name": "close", "input": "{{sample.output_text}}",
                               "reference": "{{item.target}}", "evaluation_metric": "fuzzy_match"}}}


def test_a_reinforcement_job_graded_by_an_openai_grader(server):
    grader = MIXED
    client = server.openai()
    training = client.files.create(file=("prompts.jsonl", jsonl(prompts(8))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tailor.tiny", training_file=training.id, suffix="rl", method={
        "type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": REINFORCEMENT}})
    assert job.method.reinforcement.grader.name == grader["name"]
    assert job.method.reinforcement.hyperparameters.eval_samples == 4
    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))[::-1]
    rewards = [e.data["critic_rewards_mean"] for e in events if e.type == "metrics" and "critic_rewards_mean" in e.data]
    assert rewards and all(0 <= reward <= 1 for reward in rewards)
    assert sum(e.data.get("grader_error_count", 0) for e in events if e.type == "metrics") == 0
    csv = client.files.content(done.result_files[0]).text.splitlines()
    assert csv[0].startswith("step,") and "critic_rewards_mean" in csv[0] and len(csv) > 1

