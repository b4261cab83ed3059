"""Evaluation: score models' answers against references (automatic metrics and an LLM judge),
compare models side by side, and check how well training data covers the evaluation questions.

- ``results``   the records an evaluation produces, and their averages;
- ``metrics``   automatic metrics: exact match, token F1, ROUGE, BERTScore, embedding cosine;
- ``judge``     LLM-as-judge ratings (Builtin.Correctness, ...) with the judge's reasoning;
- ``coverage``  which evaluation questions the training data covers, and which it barely does;
- ``run``       answer the questions with each model, then score them;
- ``report``    JSON, CSV and a self-contained HTML report with a chart;
- ``worker``    an evaluation job, run in its own process.
"""
