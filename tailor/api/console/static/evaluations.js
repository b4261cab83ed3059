// The Evaluations page: the create form (criteria from templates or grader drafts, rows pasted
// or from a file, one run per chosen model), and the runs' and jobs' status and counts kept
// current by polling the page's JSON route while any is unfinished.
"use strict";

(() => {
  const DRAFTS_KEY = "tailor.grader-drafts";  // written by the Graders page
  const FINISHED = new Set(["completed", "failed", "canceled", "Completed", "Failed", "Stopped"]);
  const POLL_MS = 1500;
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };
  const drafts = () => { try { return JSON.parse(localStorage.getItem(DRAFTS_KEY) || "{}") || {}; } catch { return {}; } };

  // ---- the create form
  const form = $("eval-form");
  if (form) {
    const starters = JSON.parse($("eval-criteria").textContent);
    const criteria = $("eval-criteria-json"), status = $("eval-form-status");
    const draftOptions = $("criterion-drafts");
    draftOptions.replaceChildren(...Object.keys(drafts()).sort().map((name) => new Option(name, `draft:${name}`)));

    $("criterion-add").addEventListener("click", () => {
      const [kind, name] = $("criterion-kind").value.split(/:(.*)/s);
      let criterion = kind === "starter" ? starters[name] : drafts()[name];
      if (!criterion) return;
      criterion = structuredClone(criterion);
      if (!("pass_threshold" in criterion) && !["string_check", "label_model"].includes(criterion.type)) {
        criterion.pass_threshold = 0.5;  // a score passes from here (required for text_similarity)
      }
      let list;
      try {
        list = criteria.value.trim() ? JSON.parse(criteria.value) : [];
        if (!Array.isArray(list)) list = [list];
      } catch (error) {
        tailor.fieldError(form, "testing_criteria", `Not JSON: ${error.message}`);
        return;
      }
      const names = new Set(list.map((c) => c.name));
      for (let n = 2; names.has(criterion.name); n += 1) criterion.name = `${criterion.name.replace(/-\d+$/, "")}-${n}`;
      list.push(criterion);
      criteria.value = JSON.stringify(list, null, 2);
      tailor.fieldError(form, "testing_criteria", "");
    });

    $("eval-rows-file").addEventListener("change", async (event) => {
      const [file] = event.target.files;
      if (file) form.elements.namedItem("rows").value = await file.text();
    });

    const FIELDS = ["name", "testing_criteria", "rows", "prompt", "models", "max_completion_tokens"];
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      for (const name of FIELDS) tailor.fieldError(form, name, "");
      let testing;
      try {
        testing = JSON.parse(criteria.value);
      } catch (error) {
        tailor.fieldError(form, "testing_criteria", `Not JSON: ${error.message}`);
        return;
      }
      const boxes = [...form.querySelectorAll('input[name="models"]:checked')];
      const body = {
        name: form.elements.namedItem("name").value.trim(), testing_criteria: testing,
        rows: form.elements.namedItem("rows").value, prompt: form.elements.namedItem("prompt").value,
        system: form.elements.namedItem("system").value,
        max_completion_tokens: form.elements.namedItem("max_completion_tokens").value,
        models: boxes.map((box) => box.value),
        labels: Object.fromEntries(boxes.map((box) => [box.value, box.dataset.label])),
      };
      const button = $("eval-create");
      button.disabled = true;
      status.textContent = "Creating…";
      try {
        const made = await tailor.api("POST", "/console/api/evaluations", body);
        status.textContent = `Created ${made.eval_id} with ${made.runs.length} run(s).`;
        window.location.assign(`/console/evaluations?created=${encodeURIComponent(made.eval_id)}#${made.eval_id}`);
      } catch (error) {
        status.textContent = "Not created: see the problems above.";
        const fields = Object.entries(error.fields || {});
        if (fields.length) for (const [name, message] of fields) tailor.fieldError(form, name, message);
        else if (error.field && FIELDS.includes(error.field)) tailor.fieldError(form, error.field, error.message);
        else status.textContent = error.message;
        button.disabled = false;
      }
    });
  }

  // ---- runs and jobs, kept current
  function runCells(row, run) {
    row.dataset.status = run.status;
    const cell = (name) => row.querySelector(`[data-cell="${name}"]`);
    cell("status").replaceChildren(el("span", { className: `status ${run.status}`, textContent: run.status }),
                                   ...(run.error ? [el("div", { className: "error", textContent: run.error })] : []));
    cell("counts").textContent = `${run.passed}/${run.total} passed${run.errored ? `, ${run.errored} errored` : ""}`;
    cell("criteria").replaceChildren(...run.criteria.map((c) => el("div", { textContent: `${c.name}: ${c.passed}/${c.passed + c.failed}` })));
    const actions = [];
    if (run.report) actions.push(el("a", { className: "report-link", href: run.report, textContent: "Report" }));
    if (!run.finished) {
      const cancel = el("button", { type: "button", className: "secondary cancel-run", textContent: "Cancel" });
      cancel.dataset.url = `/console/api/evaluations/${run.eval_id}/runs/${run.id}/cancel`;
      actions.push(cancel);
    }
    cell("actions").replaceChildren(...actions);
  }

  function jobCells(row, job) {
    row.dataset.status = job.status;
    row.querySelector('[data-cell="status"]').replaceChildren(
      el("span", { className: `status ${job.status}`, textContent: job.status }),
      ...(job.error ? [el("div", { className: "error", textContent: job.error })] : []));
    row.querySelector('[data-cell="reports"]').replaceChildren(...job.datasets.map((d) => el("div", {},
      d.report ? el("a", { className: "report-link", href: d.report, textContent: d.name }) : d.name,
      " ", el("span", { className: "muted", textContent: `(${d.metrics.join(", ")})` }))));
    if (job.finished) row.querySelector('[data-cell="actions"]').replaceChildren();
  }

  const unfinished = () => [...document.querySelectorAll("tr[data-run], tr[data-job]")]
    .some((row) => !FINISHED.has(row.dataset.status));

  let timer = null;
  async function refresh() {
    timer = null;
    try {
      const listing = await tailor.api("GET", "/console/api/evaluations");
      for (const evaluation of listing.evals) {
        for (const run of evaluation.runs) {
          const row = document.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`);
          if (row) runCells(row, run);
        }
      }
      for (const job of listing.jobs) {
        const row = document.querySelector(`tr[data-job="${CSS.escape(job.name)}"]`);
        if (row) jobCells(row, job);
      }
    } catch (error) {
      if (error.status === 401) return;  // signed out: stop asking
    }
    schedule();
  }
  function schedule() {
    if (timer === null && unfinished()) timer = setTimeout(refresh, POLL_MS);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.cancel-run, button.stop-job");
    if (!button) return;
    button.disabled = true;
    try {
      await tailor.api("POST", button.dataset.url);
    } catch (error) {
      button.replaceWith(el("span", { className: "error", textContent: error.message }));
    }
    if (timer !== null) clearTimeout(timer);
    timer = null;
    refresh();
  });

  schedule();
})();
