"""Graders for reinforcement fine-tuning, kept to the original service's AWS Lambda contract.

    contract.py        the batch a grader receives (``sample``) and reading what it returns
                       (``read_results`` -> ``GradeResult``); readers for grader authors
    sandbox.py         runs a Python grader's ``lambda_handler`` confined by bubblewrap: as nobody,
                       without the server's files, environment or network, with CPU, memory,
                       process and wall-clock limits; refused where bubblewrap cannot run
    judge_egress.py    the sandbox's one network path: a judge grader's proxy to its judge
    remote.py          HTTP graders: the batch POSTed as JSON to a URL
    registry.py        registered graders (table ``graders``, Lambda-form ARNs) and ``grade``
    judging.py         the shared half of the judge (LLM-as-judge) templates
    template_files.py  the shipped templates (``templates/``) that users copy

The RFT trainer looks a grader up by the ARN a job names and grades batches with it::

    from tailor.graders.contract import sample
    from tailor.graders.registry import get_grader, grade

    info = get_grader(store, job_request_lambda_arn)
    results = grade(info, [sample(record, completion, f"{step}-{i}") for ...], settings)

This package's ``__init__`` stays light on purpose: the sandbox's child process imports the
package, and it should not pay for SQLAlchemy on every batch.
"""

from tailor.graders.contract import GradeResult, read_results, sample

__all__ = ["GradeResult", "read_results", "sample"]
