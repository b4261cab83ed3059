"""Write an evaluation comparison out for people and for other programs.

``write_report`` puts three files in a folder:

- ``comparison.json``: everything (``results.to_json``), for programs;
- ``comparison.csv``: one row per question and model, for a spreadsheet;
- ``report.html``: one self-contained page (summary, chart, per-category and per-question tables,
  data coverage) that opens offline from disk: no scripts, no external styles, fonts or images.

``summary_text`` is the same summary as a plain-text table for the terminal.

A missing score (``None``: a judge that never gave a parsable rating) is shown as "—" and never as
0, and it stays out of every mean (see ``results.summarize``). Every piece of user text reaching the
page goes through ``html.escape``; the page also forbids scripts with a Content-Security-Policy, so
a model answer that contains markup stays text.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from html import escape
from pathlib import Path

from tailor import storage
from tailor.evaluate import results
from tailor.evaluate.judge import JUDGE_METRICS
from tailor.evaluate.results import Answer, Comparison, Question, Score

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
    missing), then each judge metric's raw rating and reasoning."""
    judge_metrics = [metric for metric in comparison.metrics if is_judge_metric(metric)]
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
        axes.set_ylim(0, 1.12)
        axes.set_ylabel("mean score (0–1)")
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
# HTML

STYLE = """
:root { color-scheme: light; --line: #d8dde3; --muted: #5f6b7a; --best: #e3f4e8; --warn: #fff4d6;
        --warn-line: #e0b040; --bad: #b3261e; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2530;
       margin: 0; background: #f6f7f9; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.note { color: var(--muted); margin: 4px 0 10px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid var(--line); padding: 6px 9px; vertical-align: top; text-align: left; }
th { background: #eef1f4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { background: var(--best); font-weight: 600; }
.sub { display: block; color: var(--muted); font-size: 12px; font-weight: normal; }
.chart svg { max-width: 100%; height: auto; }
.questions { width: 100%; }
.questions tbody { border-top: 2px solid #9aa5b1; }
.question { min-width: 16em; max-width: 28em; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.answer { min-width: 18em; max-width: 40em; }
.label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.tag { display: inline-block; padding: 0 6px; border-radius: 8px; background: #e8ecf1; font-size: 12px; }
.tag.warn { background: var(--warn); border: 1px solid var(--warn-line); }
.failed { color: var(--bad); }
details { margin-top: 4px; font-size: 12px; }
details summary { cursor: pointer; color: var(--muted); }
details .text { max-width: 32em; }
.warning { background: var(--warn); border: 1px solid var(--warn-line); border-radius: 6px; padding: 10px 14px;
           margin: 10px 0; }
.warning ul { margin: 6px 0 0; padding-left: 20px; }
.terms .missing { color: var(--bad); text-decoration: line-through; }
.matches { margin: 4px 0 0; padding-left: 18px; }
a { color: #1d5fb4; }
"""


def render_html(comparison: Comparison) -> str:
    """The whole report as one self-contained HTML page."""
    summary = results.summarize(comparison)
    models = " vs ".join(comparison.models) or "no models"
    sections = [
        header_section(comparison),
        summary_section(comparison, summary),
        chart_section(comparison),
        category_section(comparison, summary),
        coverage_section(comparison),
        questions_section(comparison),
    ]
    # The policy is a second line of defence behind escaping: nothing may run or be fetched.
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evaluation: {escape(models)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
{"".join(section for section in sections if section)}
</main>
</body>
</html>
"""


def header_section(comparison: Comparison) -> str:
    categories = {row.question.category for row in comparison.rows if row.question.category}
    facts = [
        ("Models", ", ".join(comparison.models) or "none"),
        ("Judge", comparison.judge or "none"),
        ("Questions", f"{len(comparison.rows)}" + (f" in {len(categories)} categories" if categories else "")),
        ("Metrics", ", ".join(comparison.metrics) or "none"),
    ]
    rows = "".join(f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in facts)
    return f'<h1>Evaluation report</h1>\n<dl class="facts">{rows}</dl>\n'


def best_positions(values: list[float | None]) -> set[int]:
    """Which of several models' values are the highest, when there is a difference to show."""
    present = [value for value in values if value is not None]
    if len(present) < 2 or max(present) == min(present):
        return set()
    return {position for position, value in enumerate(values) if value == max(present)}


def mean_cell(metric: str, entry: dict, best: bool) -> str:
    mean = entry["mean"]
    parts = [format_value(mean)]
    if mean is not None and is_judge_metric(metric):
        parts.append(f'<span class="sub">{as_rating(mean):.1f}/10</span>')
    if entry["missing"]:
        parts.append(f'<span class="sub">{entry["count"]} scored, {entry["missing"]} missing</span>')
    classes = "num best" if best else "num"
    return f'<td class="{classes}" data-metric="{escape(metric)}">{"".join(parts)}</td>'


def summary_section(comparison: Comparison, summary: dict) -> str:
    if not comparison.models:
        return ""
    head = "".join(f'<th class="num">{escape(metric)}</th>' for metric in comparison.metrics)
    best = {metric: best_positions([summary[model]["metrics"][metric]["mean"] for model in comparison.models])
            for metric in comparison.metrics}
    body = []
    for position, model in enumerate(comparison.models):
        model_summary = summary[model]
        total = model_summary["answered"] + model_summary["failed"]
        answered = f'{model_summary["answered"]}/{total}'
        if model_summary["failed"]:
            answered += f'<span class="sub failed">{model_summary["failed"]} failed</span>'
        cells = "".join(mean_cell(metric, model_summary["metrics"][metric], position in best[metric])
                        for metric in comparison.metrics)
        body.append(f'<tr data-model="{escape(model)}"><th>{escape(model)}</th>'
                    f'<td class="num">{answered}</td>{cells}</tr>')
    return (
        '<h2>Summary</h2>\n'
        '<p class="note">Mean of each metric over the questions a model answered (0–1, higher is better;'
        ' judge ratings also on their 1–10 scale). Missing scores are left out of the means.</p>\n'
        f'<table class="summary"><thead><tr><th>Model</th><th class="num">Answered</th>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>\n'
    )


def chart_section(comparison: Comparison) -> str:
    svg = chart_svg(comparison)
    if not svg:
        return ""
    return ('<h2>Mean scores</h2>\n'
            f'<figure class="chart" role="img" aria-label="Mean score per metric and model">{svg}</figure>\n')


def category_section(comparison: Comparison, summary: dict) -> str:
    questions = Counter(row.question.category for row in comparison.rows if row.question.category)
    if not questions or not comparison.models:
        return ""
    head = "".join(f'<th class="num">{escape(metric)}</th>' for metric in comparison.metrics)
    body = []
    for category in sorted(questions):
        count = f'{questions[category]} question{"s" if questions[category] != 1 else ""}'
        means = {model: summary[model]["categories"].get(category, {}) for model in comparison.models}
        best = {metric: best_positions([means[model].get(metric) for model in comparison.models])
                for metric in comparison.metrics}
        for position, model in enumerate(comparison.models):
            first = "" if position else (
                f'<th rowspan="{len(comparison.models)}">{escape(category)}<span class="sub">{count}</span></th>')
            cells = "".join(
                f'<td class="{"num best" if position in best[metric] else "num"}" data-metric="{escape(metric)}">'
                f'{format_value(means[model].get(metric))}</td>' for metric in comparison.metrics)
            body.append(f'<tr data-category="{escape(category)}" data-model="{escape(model)}">{first}'
                        f'<td>{escape(model)}</td>{cells}</tr>')
    return (
        '<h2>By category</h2>\n'
        f'<table class="categories"><thead><tr><th>Category</th><th>Model</th>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>\n'
    )


def score_cell(metric: str, score: Score | None, best: bool) -> str:
    value = None if score is None else score.value
    parts = [format_value(value)]
    if score is not None and score.rating is not None:
        parts.append(f'<span class="sub">{score.rating}/10</span>')
    if score is not None and score.explanation:
        summary = "reasoning" if value is not None else "why missing"
        parts.append(f'<details><summary>{summary}</summary><div class="text">{escape(score.explanation)}</div>'
                     '</details>')
    classes = "num best" if best else "num"
    return f'<td class="{classes}" data-metric="{escape(metric)}">{"".join(parts)}</td>'


def answer_cell(answer: Answer) -> str:
    if answer.response is None:
        return f'<td class="answer failed">No answer{": " + escape(answer.error) if answer.error else ""}</td>'
    error = f'<span class="sub failed">{escape(answer.error)}</span>' if answer.error else ""
    return f'<td class="answer"><div class="text">{escape(answer.response)}</div>{error}</td>'


def question_cell(question: Question, rowspan: int, coverage: dict | None) -> str:
    parts = [f'<span class="label">Line {question.line}</span>']
    if question.category:
        parts.append(f' <span class="tag">{escape(question.category)}</span>')
    if coverage is not None and coverage.get("under_covered"):
        parts.append(f' <a class="tag warn" href="#coverage" title="{escape(coverage_sentence(coverage))}">'
                     'under-covered</a>')
    parts.append(f'<div class="text">{escape(question.prompt)}</div>')
    if question.reference is not None:
        parts.append(f'<div class="label">Reference</div><div class="text">{escape(question.reference)}</div>')
    return f'<td class="question" rowspan="{rowspan}">{"".join(parts)}</td>'


def questions_section(comparison: Comparison) -> str:
    if not comparison.rows:
        return ""
    coverage_by_line = {entry.get("line"): entry for entry in coverage_questions(comparison.coverage)}
    head = "".join(f'<th class="num">{escape(metric)}</th>' for metric in comparison.metrics)
    groups = []
    for row in comparison.rows:
        question = row.question
        best = {metric: best_positions([score.value if (score := answer.score(metric)) else None
                                        for answer in row.answers])
                for metric in comparison.metrics}
        first = question_cell(question, len(row.answers), coverage_by_line.get(question.line))
        lines = []
        for position, answer in enumerate(row.answers):
            cells = "".join(score_cell(metric, answer.score(metric), position in best[metric])
                            for metric in comparison.metrics)
            lines.append(f'<tr data-line="{question.line}" data-model="{escape(answer.model)}">'
                         f'{"" if position else first}<td>{escape(answer.model)}</td>{answer_cell(answer)}{cells}</tr>')
        groups.append(f'<tbody id="question-{question.line}">{"".join(lines)}</tbody>')
    return (
        '<h2>Questions</h2>\n'
        '<p class="note">The highest score for each question and metric is highlighted when the models differ.'
        ' Open “reasoning” to read the judge.</p>\n'
        f'<table class="questions"><thead><tr><th>Question</th><th>Model</th><th>Answer</th>{head}</tr></thead>'
        f'{"".join(groups)}</table>\n'
    )


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


def coverage_section(comparison: Comparison) -> str:
    coverage = comparison.coverage
    if coverage is None:
        return ""
    questions = coverage_questions(coverage)
    under = [question for question in questions if question.get("under_covered")]
    facts = [("Training data", coverage.get("training_file")), ("Evaluation data", coverage.get("evaluation_file")),
             ("Method", coverage.get("method")), ("Threshold", coverage.get("threshold")),
             ("Training records", coverage.get("training_records"))]
    parts = ['<h2 id="coverage">Data coverage</h2>\n',
             '<dl class="facts">' + "".join(f"<dt>{escape(name)}</dt><dd>{escape(str(value))}</dd>"
                                            for name, value in facts if value is not None) + "</dl>\n"]
    if under:
        items = []
        for question in under:
            missing = ", ".join(map(str, question.get("missing_terms") or []))
            missing_note = f' <span class="sub">Missing terms: {escape(missing)}</span>' if missing else ""
            line = question.get("line")
            prompt = escape(str(question.get("prompt", "")))
            link = f'<a href="#question-{escape(str(line))}">{prompt}</a>' if line is not None else prompt
            items.append(f"<li>{escape(covers_prefix(question))}: {link}{missing_note}</li>")
        parts.append(f'<div class="warning" role="alert"><strong>{len(under)} of {len(questions)} questions are '
                     'under-covered by the training data.</strong> Expect weak answers to them; add training '
                     f'records that cover them.<ul>{"".join(items)}</ul></div>\n')
    else:
        parts.append('<p class="note">Every question is covered by the training data.</p>\n')
    if questions:
        rows = "".join(coverage_row(question) for question in questions)
        parts.append('<table class="coverage"><thead><tr><th>Line</th><th>Question</th><th class="num">'
                     'Covering records</th><th>Key terms</th><th>Closest training records</th></tr></thead>'
                     f'<tbody>{rows}</tbody></table>\n')
    return "".join(parts)


def coverage_row(question: dict) -> str:
    missing = {str(term) for term in question.get("missing_terms") or []}
    terms = ", ".join(f'<span class="missing" title="in no training record">{escape(str(term))}</span>'
                      if str(term) in missing else escape(str(term)) for term in question.get("key_terms") or [])
    matches = question.get("top_matches") or []
    items = "".join(
        f'<li><span class="label">Line {escape(str(match.get("line")))} · score {format_score(match.get("score"))}'
        f' · {escape(", ".join(map(str, match.get("matched_terms") or [])))}</span>'
        f'<div class="text">{escape(str(match.get("text", "")))}</div></li>'
        for match in matches)
    closest = (f'<details><summary>{len(matches)} record{"s" if len(matches) != 1 else ""}</summary>'
               f'<ol class="matches">{items}</ol></details>') if matches else MISSING
    tag = ' <span class="tag warn">under-covered</span>' if question.get("under_covered") else ""
    return (f'<tr><td class="num">{escape(str(question.get("line", "")))}</td>'
            f'<td>{escape(str(question.get("prompt", "")))}{tag}</td>'
            f'<td class="num">{escape(str(question.get("covering_records", MISSING)))}</td>'
            f'<td class="terms">{terms}</td><td>{closest}</td></tr>')


def format_score(score) -> str:
    return f"{score:.2f}" if isinstance(score, (int, float)) else escape(str(score))
