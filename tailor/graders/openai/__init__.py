"""OpenAI's grader objects (``method.reinforcement.grader``) as Tailor graders.

OpenAI's fine-tuning API describes a reinforcement job's grader as a JSON object, and
``client.fine_tuning.alpha.graders.validate`` / ``.run`` check and try one. The contract is the
openai-python SDK's ``types/graders`` and ``types/fine_tuning/alpha/grader_run_response.py``:

``string_check``     ``input`` compared with ``reference``: ``eq`` / ``ne`` (exact, case-sensitive),
                     ``like`` (``reference`` occurs in ``input``), ``ilike`` (the same, ignoring
                     case); 1.0 or 0.0.
``text_similarity``  ``evaluation_metric`` of ``input`` against ``reference`` (``METRICS`` says how
                     each is computed); a score in 0–1.
``python``           ``source`` defines ``grade(sample, item) -> float``, run in the grader sandbox
                     (``tailor.graders.sandbox``: bubblewrap, no network, CPU, memory and wall-clock
                     limits), exactly where an operator's Python graders run.
``score_model``      a judge model answers the rendered ``input`` messages with a number within
                     ``range`` (default [0, 1]); that number is the reward.
``label_model``      a judge model answers with one of ``labels``; 1.0 when it is in ``passing_labels``.
``multi``            ``graders`` (name -> one of the above) combined by ``calculate_output``, a
                     formula over their names (``+ - * / ** ^``, ``min max abs sqrt log exp floor
                     ceil``), evaluated by a whitelist over Python's ``ast`` (never ``eval``).

Templates. Strings may hold ``{{ item.FIELD }}`` (the dataset record; nested ``a.b``, ``a[0]`` or
``a.0``) and ``{{ sample.output_text }}``, ``{{ sample.output_json.FIELD }}`` (the output parsed as
JSON; an error when it is not JSON), ``{{ sample.output_tools }}`` (always ``[]``: Tailor's RFT
samples are text) and ``{{ sample.choices }}``. A value that is not a string is written as JSON. A
variable the item or sample lacks is an error of that sample (zero reward), never an empty string.

The judge of the model graders is a model *Tailor* serves: a catalog id or ``TAILOR_MODEL_ALIASES``
key (``tailor.catalog.resolve_registered_model``), or the name of an operator-configured
``remote_models`` entry — never an address the caller supplies. It is asked through the
evaluation backends (``tailor.evaluate.backends``), greedy unless ``sampling_params`` say
otherwise; a reply that does not parse is asked once more with a reminder of the form, as
``tailor.evaluate.judge.ask_judge`` does, then is a ``model_grader_parse_error``.

Entry points::

    validate(definition, settings) -> Grader            # InvalidGrader naming each bad field's path
    run(definition, sample_text=..., item=..., settings=...) -> dict   # GraderRunResponse's shape
    grade_samples(definition, samples, settings) -> list[GradeResult]   # registry.grade, kind "openai"
    grade(grader, cases, settings) -> list[Graded]      # Evals testing criteria, evaluation custom metrics
    grader_info(definition, settings) -> GraderInfo     # what an RFT job snapshots

Refused, each with a message saying why: image and audio content (Tailor's judges read text), a
``multi`` inside a ``multi`` (the SDK does not allow it either), models Tailor does not serve.
Accepted and ignored: ``python.image_tag`` (the sandbox runs Tailor's own Python), and
``sampling_params.seed`` and ``reasoning_effort`` (Tailor's engine samples with a fixed seed and
has no reasoning effort).

The modules, each importing only those listed above it::

    templates.py      the {{ ... }} variables: render, sample_namespace, _check_templates
    formula.py        a multi grader's calculate_output: _formula, evaluate_formula
    similarity.py     string_check and the text_similarity metrics (similarity, METRIC_NOTES)
    outcomes.py       one sample's verdict (_Outcome) and what a grading carries (_Context, Judges)
    definitions.py    the pydantic models of the six types, InvalidGrader
    python_grader.py  the python grader in the sandbox (the PYTHON_* limits)
    model_graders.py  score_model and label_model: the judges, ask, parse_score, parse_label
    validation.py     validate, to_json
    grading.py        run, grade_samples, grader_info, and the per-type dispatch (_grade)

This package's own names are the public ones of those modules; import them from here.
"""

from tailor.graders.openai.definitions import (
    GRADER_TYPES,
    METRICS,
    Grader,
    InvalidGrader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    SubGrader,
    TextSimilarityGrader,
)
from tailor.graders.openai.formula import evaluate_formula
from tailor.graders.openai.grading import ERROR_FLAGS, Graded, grade, grade_samples, grader_info, run
from tailor.graders.openai.model_graders import (
    ask,
    close_judges,
    parse_label,
    parse_score,
)
from tailor.graders.openai.outcomes import Judges
from tailor.graders.openai.similarity import (
    METRIC_NOTES,
    fuzzy_match,
    similarity,
    string_check,
)
from tailor.graders.openai.templates import SAMPLE_VARIABLES, render, sample_namespace
from tailor.graders.openai.validation import to_json, validate

__all__ = [
    "ERROR_FLAGS", "GRADER_TYPES", "METRICS", "METRIC_NOTES", "SAMPLE_VARIABLES",
    "Graded", "Grader", "InvalidGrader", "Judges", "LabelModelGrader", "MultiGrader", "PythonGrader", "ScoreModelGrader",
    "StringCheckGrader", "SubGrader", "TextSimilarityGrader",
    "ask", "close_judges", "evaluate_formula", "fuzzy_match", "grade", "grade_samples", "grader_info", "parse_label",
    "parse_score", "render", "run", "sample_namespace", "similarity", "string_check", "to_json", "validate",
]
