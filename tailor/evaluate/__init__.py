"""Evaluation: score models' answers against references (automatic metrics and an LLM judge),
compare models side by side, and check how well training data covers the evaluation questions.

- ``results``   the records an evaluation produces, and their averages;
- ``metrics``   automatic metrics: exact match, token F1, ROUGE, BERTScore, embedding cosine;
- ``judge``     LLM-as-judge ratings (Builtin.Correctness, ...) with the judge's reasoning: the one
                judge loop (prompt, call, parse, retry), shared with RFT's judge graders;
- ``coverage``  which evaluation questions the training data covers, and which it barely does;
- ``run``       answer the questions with each model, then score them;
- ``report``    JSON, CSV and a self-contained HTML report with a chart;
- ``backends``  where answers come from: Tailor's engine, a remote model, (CLI) an address;
- ``spec``      what an evaluation job runs, resolved when it is created;
- ``job``       an evaluation job's work, from its spec (the job worker publishes the results).
"""
