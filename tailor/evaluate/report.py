"""Write an evaluation comparison out for people and for other programs.

``write_report`` puts three files in a folder:

- ``comparison.json``: everything (``results.to_json``), for programs;
- ``comparison.csv``: one row per question and model, for a spreadsheet;
- ``report.html``: one self-contained page (summary, chart, per-category and per-question tables,
  data coverage) that opens offline from disk: no scripts, no external styles, fonts or images.

``summary_text`` is the same summary as a plain-text table for the terminal.

A missing score (``None``: a judge that never gave a parsable rating) is shown as "—" and never as
0, and it stays out of every mean (see ``results.summarize``). The page is a Jinja2 template
(``templates/report.html.j2``) rendered with autoescaping on, so every piece of user text reaching
it is escaped without each call site having to remember to; the page also forbids scripts with a
Content-Security-Policy, so a model answer that contains markup stays text.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jinja2

from tailor import storage
from tailor.evaluate import results
from tailor.evaluate.judge import JUDGE_METRICS
from tailor.evaluate.results import Comparison, Score

MISSING = "—"
FILE_NAMES = {"json": "comparison.json", "csv": "comparison.csv", "html": "report.html"}
CSV_COLUMNS = ("line", "category", "prompt", "reference", "model", "response", "error")


def write_report(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``comparison.json``, ``comparison.csv`` and ``report.html`` into ``out_dir`` (created if
    needed); returns their paths by kind (``"json"``, ``"csv"``, ``"html"``).

    All three are rendered before any is written, and each is written to a temporary file then
    renamed over the old one: a failure never leaves a half-written or mixed-up report behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {"json": json_text(comparison), "csv": csv_text(comparison), "html": render_html(comparison)}
    paths = {kind: out_dir / name for kind, name in FILE_NAMES.items()}
    for kind, text in texts.items():
        storage.write_text_atomic(paths[kind], text)
    return paths


def json_text(comparison: Comparison) -> str:
    return json.dumps(results.to_json(comparison), indent=2, ensure_ascii=False) + "\n"


def is_judge_metric(metric: str) -> bool:
    return metric in JUDGE_METRICS


def csv_text(comparison: Comparison) -> str:
    """One row per question × model: the question, the answer, each metric's value (empty when
    missing), then each judge metric's raw rating and reasoning (a custom metric's too: any metric
    whose scores carry an explanation)."""
    judge_metrics = [metric for metric in comparison.metrics if is_judge_metric(metric) or any(
        (score := answer.score(metric)) and score.explanation for row in comparison.rows for answer in row.answers)]
    header = [*CSV_COLUMNS, *comparison.metrics]
    for metric in judge_metrics:
        header += [f"{metric}.rating", f"{metric}.explanation"]
    buffer = io.StringIO()
    # "\n" rather than csv's "\r\n": the text is written in text mode, which would double the "\r"
    # on Windows.
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in comparison.rows:
        question = row.question
        for answer in row.answers:
            scores = [answer.score(metric) for metric in comparison.metrics]
            cells = [question.line, question.category, question.prompt, question.reference, answer.model,
                     answer.response, answer.error, *[score and score.value for score in scores]]
            for metric in judge_metrics:
                score = answer.score(metric)
                cells += [score and score.rating, score and score.explanation]
            writer.writerow(["" if cell is None else cell for cell in cells])
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Numbers as text

def format_value(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def as_rating(value: float) -> float:
    """A mean 0–1 judge score back on the judge's 1–10 scale (the inverse of ``(rating - 1) / 9``)."""
    return 1 + 9 * value


def format_mean(metric: str, value: float | None) -> str:
    """A mean for the terminal: judge metrics also on their 1–10 scale, e.g. ``0.667 (7.0/10)``."""
    if value is None or not is_judge_metric(metric):
        return format_value(value)
    return f"{value:.3f} ({as_rating(value):.1f}/10)"


def summary_text(comparison: Comparison) -> str:
    """The summary as a plain-text table: one row per model, one column per metric (means)."""
    summary = results.summarize(comparison)
    header = ["model", "answered", *comparison.metrics]
    table = [header]
    notes = []
    for model in comparison.models:
        model_summary = summary[model]
        answered = f"{model_summary['answered']}/{model_summary['answered'] + model_summary['failed']}"
        cells = [model, answered]
        for metric in comparison.metrics:
            entry = model_summary["metrics"][metric]
            cells.append(format_mean(metric, entry["mean"]))
            if entry["missing"]:
                notes.append(f"{model} {metric}: {entry['missing']} of {entry['missing'] + entry['count']}")
        table.append(cells)
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(line, widths))).rstrip()
             for line in table]
    if notes:
        lines.append("Missing scores, left out of the means: " + "; ".join(notes) + ".")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Chart

def chart_svg(comparison: Comparison) -> str:
    """A grouped bar chart of every metric's mean per model, as an ``<svg>`` element to inline in a
    page ("" when there is nothing to draw). Text is drawn as paths, so it needs no font."""
    # Heavy import kept here: the CLI and the API import this module. No pyplot: a bare Figure on
    # the Agg canvas touches no global state and needs no display.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models, metrics = comparison.models, comparison.metrics
    if not models or not metrics:
        return ""
    summary = results.summarize(comparison)
    style = {"svg.fonttype": "path", "svg.hashsalt": "tailor-report", "font.size": 9,
             "axes.spines.top": False, "axes.spines.right": False}
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(min(14.0, max(6.0, 1.1 * len(metrics) * max(1.0, len(models) / 2))), 3.8))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        width = 0.8 / len(models)
        for position, model in enumerate(models):
            means = [summary[model]["metrics"][metric]["mean"] for metric in metrics]
            offset = (position - (len(models) - 1) / 2) * width
            # A missing mean gets no bar and a "—" label, never a bar at 0.
            bars = axes.bar([index + offset for index in range(len(metrics))],
                            [0.0 if mean is None else mean for mean in means], width, label=model)
            axes.bar_label(bars, [MISSING if mean is None else f"{mean:.2f}" for mean in means],
                           padding=2, fontsize=7)
        tilted = len(metrics) > 4
        axes.set_xticks(range(len(metrics)), metrics, rotation=20 if tilted else 0,
                        ha="right" if tilted else "center")
        # A custom metric's number scale may reach past 1 (docs/evaluation.md): the axis grows with it.
        highest = max([mean for model in models for metric in metrics
                       if (mean := summary[model]["metrics"][metric]["mean"]) is not None], default=1.0)
        axes.set_ylim(0, max(1.12, highest * 1.12))
        axes.set_ylabel("mean score (0–1)" if highest <= 1 else "mean score")
        axes.grid(axis="y", alpha=0.3)
        axes.set_axisbelow(True)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2 if tilted else -0.1),
                    ncols=min(len(models), 3), frameon=False)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML


# ---------------------------------------------------------------------------------------------
# HTML: ``templates/report.html.j2`` draws the page; the functions below only gather what it shows,
# as plain values (numbers already formatted), so that all markup and all escaping happen in one place.


@dataclass(frozen=True)
class Cell:
    """One metric's value in a table: the number, small lines under it, and the judge's reasoning
    folded away (``details``: the summary to click, the text)."""

    metric: str
    value: str
    best: bool = False
    subs: tuple[str, ...] = ()
    details: tuple[str, str] | None = None


@functools.cache
def _templates() -> jinja2.Environment:
    # autoescape=True, not select_autoescape: the template's ".j2" suffix would turn it off.
    # StrictUndefined: a misspelt name fails the render instead of showing nothing.
    return jinja2.Environment(loader=jinja2.PackageLoader("tailor.evaluate", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(comparison: Comparison) -> str:
    """The whole report as one self-contained HTML page."""
    summary = results.summarize(comparison)
    page = _templates().get_template("report.html.j2").render(
        title=" vs ".join(comparison.models) or "no models",
        facts=header_facts(comparison),
        metrics=comparison.metrics,
        summary_rows=summary_rows(comparison, summary),
        chart=chart_svg(comparison),  # the one piece of markup the template does not escape (it says why)
        categories=category_tables(comparison, summary),
        coverage=coverage_view(comparison.coverage),
        questions=question_groups(comparison),
        missing=MISSING,
    )
    return page


def header_facts(comparison: Comparison) -> list[tuple[str, str]]:
    categories = {row.question.category for row in comparison.rows if row.question.category}
    return [
        ("Models", ", ".join(comparison.models) or "none"),
        ("Judge", comparison.judge or "none"),
        ("Questions", f"{len(comparison.rows)}" + (f" in {len(categories)} categories" if categories else "")),
        ("Metrics", ", ".join(comparison.metrics) or "none"),
    ]


def best_positions(values: list[float | None]) -> set[int]:
    """Which of several models' values are the highest, when there is a difference to show."""
    present = [value for value in values if value is not None]
    if len(present) < 2 or max(present) == min(present):
        return set()
    return {position for position, value in enumerate(values) if value == max(present)}


def mean_cell(metric: str, entry: dict, best: bool) -> Cell:
    mean = entry["mean"]
    subs = []
    if mean is not None and is_judge_metric(metric):
        subs.append(f"{as_rating(mean):.1f}/10")
    if entry["missing"]:
        subs.append(f'{entry["count"]} scored, {entry["missing"]} missing')
    return Cell(metric, format_value(mean), best, tuple(subs))


def summary_rows(comparison: Comparison, summary: dict) -> list[dict]:
    best = {metric: best_positions([summary[model]["metrics"][metric]["mean"] for model in comparison.models])
            for metric in comparison.metrics}
    rows = []
    for position, model in enumerate(comparison.models):
        model_summary = summary[model]
        total = model_summary["answered"] + model_summary["failed"]
        rows.append({"model": model, "answered": f'{model_summary["answered"]}/{total}',
                     "failed": model_summary["failed"],
                     "cells": [mean_cell(metric, model_summary["metrics"][metric], position in best[metric])
                               for metric in comparison.metrics]})
    return rows


def category_tables(comparison: Comparison, summary: dict) -> list[dict]:
    questions = Counter(row.question.category for row in comparison.rows if row.question.category)
    if not comparison.models:
        return []
    tables = []
    for category in sorted(questions):
        means = {model: summary[model]["categories"].get(category, {}) for model in comparison.models}
        best = {metric: best_positions([means[model].get(metric) for model in comparison.models])
                for metric in comparison.metrics}
        rows = [{"model": model,
                 "cells": [Cell(metric, format_value(means[model].get(metric)), position in best[metric])
                           for metric in comparison.metrics]}
                for position, model in enumerate(comparison.models)]
        count = f'{questions[category]} question{"s" if questions[category] != 1 else ""}'
        tables.append({"name": category, "count": count, "rows": rows})
    return tables


def score_cell(metric: str, score: Score | None, best: bool) -> Cell:
    value = None if score is None else score.value
    subs = (f"{score.rating}/10",) if score is not None and score.rating is not None else ()
    details = None
    if score is not None and score.explanation:
        details = ("reasoning" if value is not None else "why missing", score.explanation)
    return Cell(metric, format_value(value), best, subs, details)


def question_groups(comparison: Comparison) -> list[dict]:
    """Per question: the question (with its coverage warning) and every model's answer and scores."""
    coverage_by_line = {entry.get("line"): entry for entry in coverage_questions(comparison.coverage)}
    groups = []
    for row in comparison.rows:
        question = row.question
        coverage = coverage_by_line.get(question.line)
        best = {metric: best_positions([score.value if (score := answer.score(metric)) else None
                                        for answer in row.answers])
                for metric in comparison.metrics}
        answers = [{"model": answer.model, "response": answer.response, "error": answer.error,
                    "cells": [score_cell(metric, answer.score(metric), position in best[metric])
                              for metric in comparison.metrics]}
                   for position, answer in enumerate(row.answers)]
        under = coverage_sentence(coverage) if coverage is not None and coverage.get("under_covered") else None
        groups.append({"line": question.line, "category": question.category, "prompt": question.prompt,
                       "reference": question.reference, "under_covered": under, "answers": answers})
    return groups


# ---------------------------------------------------------------------------------------------
# Data coverage (``comparison.coverage``: the ``tailor.evaluate.coverage`` report as JSON)

def coverage_questions(coverage: dict | None) -> list[dict]:
    return list((coverage or {}).get("questions") or [])


def coverage_sentence(question: dict) -> str:
    count = question.get("covering_records") or 0
    if count == 0:
        return "No training record covers this question"
    if count == 1:
        return "Only 1 training record covers this question"
    return f"Only {count} training records cover this question"


def covers_prefix(question: dict) -> str:
    """"Only 1 training record covers", to put before the question itself."""
    return coverage_sentence(question).removesuffix(" this question")


def coverage_view(coverage: dict | None) -> dict | None:
    """What the coverage section shows, or None without a coverage report. The report is JSON
    (it may come back from a stored job), so every value is read defensively."""
    if coverage is None:
        return None
    facts = [("Training data", coverage.get("training_file")), ("Evaluation data", coverage.get("evaluation_file")),
             ("Method", coverage.get("method")), ("Threshold", coverage.get("threshold")),
             ("Training records", coverage.get("training_records"))]
    questions = [coverage_entry(question) for question in coverage_questions(coverage)]
    return {"facts": [(name, str(value)) for name, value in facts if value is not None],
            "questions": questions, "under": [question for question in questions if question["under_covered"]]}


def coverage_entry(question: dict) -> dict:
    return {"line": question.get("line"), "prompt": str(question.get("prompt", "")),
            "under_covered": bool(question.get("under_covered")), "covered_by": covers_prefix(question),
            "covering_records": str(question.get("covering_records", MISSING)),
            "key_terms": [str(term) for term in question.get("key_terms") or []],
            "missing_terms": [str(term) for term in question.get("missing_terms") or []],
            "matches": [{"line": str(match.get("line")), "score": format_score(match.get("score")),
                         "matched_terms": [str(term) for term in match.get("matched_terms") or []],
                         "text": str(match.get("text", ""))}
                        for match in question.get("top_matches") or []]}


def format_score(score) -> str:
    return f"{score:.2f}" if isinstance(score, (int, float)) else str(score)
