// The Jobs page's scripts: the create form's checks as one types (its hyperparameter ranges here,
// then the server's check and pre-flight estimate), and a job's live curves (uPlot, fed by the
// server-sent events of /console/api/jobs/{id}/live).
"use strict";

(() => {
  const TERMINAL = new Set(["Completed", "Failed", "Stopped"]);
  const COLORS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#7048e8"];
  const GRADER_DRAFTS = "tailor.grader-drafts"; // written by the Graders page: {name: grader object}

  const utc = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";

  // ---------------------------------------------------------------------------------------------
  // The create form

  function formValues(form) {
    const values = {};
    for (const [name, value] of new FormData(form)) {
      if (name !== "csrf_token" && typeof value === "string") values[name] = value;
    }
    return values;
  }

  // The problem the server would report for a hyperparameter input (hyperparams.py's wording),
  // from the range the page shows; "" when it is fine or empty (its default).
  function rangeProblem(input) {
    const kind = input.dataset.kind;
    if (!kind || kind === "choice") return "";
    if (input.validity && input.validity.badInput) return `must be ${kind === "int" ? "an integer" : "a number"}`;
    const text = input.value.trim();
    if (!text) return "";
    const value = Number(text);
    if (!Number.isFinite(value) || (kind === "int" && !/^[+-]?\d+$/.test(text))) {
      return `must be ${kind === "int" ? "an integer" : "a number"}; got '${text}'`;
    }
    const low = input.dataset.min !== undefined ? Number(input.dataset.min) : null;
    const high = input.dataset.max !== undefined ? Number(input.dataset.max) : null;
    if ((low !== null && value < low) || (high !== null && value > high)) {
      if (low !== null && high !== null) return `must be between ${low} and ${high}; got ${text}`;
      return low !== null ? `must be at least ${low}; got ${text}` : `must be at most ${high}; got ${text}`;
    }
    return "";
  }

  function setUpForm(form) {
    const touched = new Set();
    let server = {}; // the last check's problems by input name
    let submitted = false;
    let checks = 0;
    const estimate = document.getElementById("estimate");
    const estimateText = document.getElementById("estimate-text");
    const formError = document.getElementById("form-error");
    const formState = document.getElementById("form-state");
    const isRft = form.dataset.kind === "REINFORCEMENT_FINE_TUNING";

    function showProblems() {
      for (const slot of form.querySelectorAll("[data-error-for]")) {
        const name = slot.dataset.errorFor;
        const input = form.elements.namedItem(name);
        const local = input && input.dataset ? rangeProblem(input) : "";
        const shown = local || ((submitted || touched.has(name) || name === "kind" || name === "grader")
          ? (server[name] || "") : "");
        tailor.fieldError(form, name, shown);
      }
    }

    function showGeneral(message) {
      formError.hidden = !message;
      formError.textContent = message || "";
    }

    function showEstimate(answer) {
      estimate.classList.remove("working", "fits", "refused");
      if (!answer.complete) {
        estimateText.textContent = "Fill in the names, the data and the output location to see the estimate.";
      } else if (Object.keys(answer.problems).length || answer.message) {
        estimateText.textContent = "Fix the problems above to see the estimate.";
      } else if (!answer.estimate.available) {
        estimateText.textContent = answer.estimate.text;
      } else {
        estimate.classList.add(answer.estimate.fits ? "fits" : "refused");
        estimateText.textContent = answer.estimate.text;
      }
    }

    const check = tailor.debounce(async () => {
      const number = ++checks;
      estimate.classList.add("working");
      estimateText.textContent = "Checking";
      try {
        const answer = await tailor.api("POST", form.dataset.checkUrl, formValues(form));
        if (number !== checks) return; // a newer check is on its way
        server = answer.problems || {};
        showGeneral(submitted ? answer.message : "");
        showEstimate(answer);
      } catch (error) {
        if (number !== checks) return;
        estimate.classList.remove("working");
        estimateText.textContent = `The check failed: ${error.message}`;
      }
      showProblems();
    }, 400);

    async function refreshTable() {
      const container = document.getElementById("hyperparameters");
      const baseModel = form.elements.base_model.value;
      const tuning = form.elements.namedItem("hp.tuningMethod");
      const query = new URLSearchParams({ kind: form.dataset.kind, base_model: baseModel,
                                          tuning_method: tuning ? tuning.value : "" });
      try {
        const answer = await tailor.api("GET", `${form.dataset.tableUrl}?${query}`);
        const kept = {}; // what was typed meanwhile too
        for (const input of form.querySelectorAll("[data-hp]")) kept[input.name] = input.value;
        container.innerHTML = answer.html; // rendered (and escaped) by the server
        container.dataset.for = baseModel;
        for (const [name, value] of Object.entries(kept)) {
          const input = form.elements.namedItem(name);
          if (input && value) input.value = value;
        }
      } catch (error) {
        showGeneral(`Could not load the hyperparameters: ${error.message}`);
      }
      showProblems();
      check();
    }

    form.addEventListener("input", (event) => {
      if (event.target.name) touched.add(event.target.name);
      showProblems();
      check();
    });
    form.addEventListener("change", (event) => {
      const name = event.target.name;
      if (name) touched.add(name);
      if (name === "base_model" || (isRft && name === "hp.tuningMethod")) {
        refreshTable();
      } else {
        showProblems();
        check();
      }
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submitted = true;
      const button = document.getElementById("submit-job");
      button.disabled = true;
      formState.textContent = "Creating the job…";
      try {
        const answer = await tailor.api("POST", form.dataset.createUrl, formValues(form));
        formState.textContent = "Created: opening its page…";
        window.location.assign(answer.url);
        return;
      } catch (error) {
        server = error.fields || {};
        showGeneral(Object.keys(server).length ? "" : error.message);
        formState.textContent = "";
        button.disabled = false;
      }
      showProblems();
      const invalid = form.querySelector('[aria-invalid="true"]');
      if (invalid) invalid.focus();
    });

    if (isRft) setUpGrader(form, check);
    showProblems();
    check();
  }

  function setUpGrader(form, check) {
    const sections = form.querySelectorAll("[data-grader-source]");
    const show = () => {
      const chosen = form.querySelector('input[name="grader_source"]:checked');
      for (const section of sections) section.hidden = !chosen || section.dataset.graderSource !== chosen.value;
    };
    for (const radio of form.querySelectorAll('input[name="grader_source"]')) radio.addEventListener("change", show);
    show();

    let drafts = {};
    try { drafts = JSON.parse(localStorage.getItem(GRADER_DRAFTS) || "{}") || {}; } catch { drafts = {}; }
    const select = document.getElementById("grader-drafts");
    const names = Object.keys(drafts).sort();
    if (select && names.length) {
      select.disabled = false;
      select.options[0].textContent = `Your drafts from the Graders page (${names.length})`;
      for (const name of names) select.add(new Option(name, name));
      select.addEventListener("change", () => {
        if (!select.value) return;
        form.elements.grader_definition.value = JSON.stringify(drafts[select.value], null, 2);
        const radio = form.querySelector('input[name="grader_source"][value="definition"]');
        radio.checked = true;
        show();
        check();
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // A job's page

  function setUpJob(root) {
    const specs = JSON.parse(document.getElementById("job-charts").textContent);
    const rows = { training: new Map(), validation: new Map() }; // step -> {column: value}
    const charts = specs.map((spec) => ({ spec, element: document.getElementById(spec.id), plot: null, key: "" }));
    const liveState = document.getElementById("live-state");
    let cursor = { training: null, validation: null };

    function add(batch) {
      for (const part of ["training", "validation"]) {
        const columns = batch[part];
        if (!columns || !columns.step) continue;
        columns.step.forEach((step, index) => {
          const row = rows[part].get(step) || {};
          for (const [name, values] of Object.entries(columns)) {
            if (values[index] !== null && values[index] !== undefined) row[name] = values[index];
          }
          rows[part].set(step, row);
          if (cursor[part] === null || step > cursor[part]) cursor[part] = step;
        });
      }
      draw();
    }

    function draw() {
      for (const chart of charts) {
        const present = chart.spec.series.filter(([column, , part]) =>
          [...rows[part].values()].some((row) => row[column] !== undefined));
        const steps = new Set();
        for (const [column, , part] of present) {
          for (const [step, row] of rows[part]) if (row[column] !== undefined) steps.add(step);
        }
        const x = [...steps].sort((a, b) => a - b);
        chart.element.dataset.points = String(x.length);
        if (!present.length) {
          if (!chart.element.querySelector(".empty")) {
            chart.element.innerHTML = '<p class="empty">No points yet.</p>';
          }
          continue;
        }
        const data = [x, ...present.map(([column, , part]) => x.map((step) => {
          const value = rows[part].get(step)?.[column];
          return value === undefined ? null : value;
        }))];
        const key = present.map(([column]) => column).join(",");
        if (chart.plot && chart.key === key) {
          chart.plot.setData(data);
          continue;
        }
        if (chart.plot) chart.plot.destroy();
        chart.element.innerHTML = "";
        chart.key = key;
        chart.plot = new uPlot({
          width: Math.max(chart.element.clientWidth, 240), height: 240,
          scales: { x: { time: false } },
          axes: [{ label: "step" }, { size: 56 }],
          series: [{ label: "step" }, ...present.map(([, label, part], index) => ({
            label, stroke: COLORS[index % COLORS.length], width: 2, spanGaps: true,
            points: { show: part === "validation" },
          }))],
        }, data, chart.element);
      }
    }

    window.addEventListener("resize", tailor.debounce(() => {
      for (const chart of charts) {
        if (chart.plot) chart.plot.setSize({ width: Math.max(chart.element.clientWidth, 240), height: 240 });
      }
    }, 150));

    function finishTime(state) {
      const progress = state.progress || {};
      const training = (state.status_details || {}).trainingDetails || {};
      if (!progress.step || !progress.totalSteps || training.status !== "InProgress" || !training.lastModifiedTime) {
        return "—";
      }
      const started = Date.parse(training.lastModifiedTime.endsWith("Z") || /[+-]\d\d:\d\d$/.test(training.lastModifiedTime)
        ? training.lastModifiedTime : training.lastModifiedTime + "Z");
      const now = Date.now();
      return utc(now + (now - started) / progress.step * (progress.totalSteps - progress.step));
    }

    function showStatus(state) {
      root.dataset.status = state.status;
      const badge = document.getElementById("job-status");
      badge.textContent = state.status;
      badge.className = `status ${state.status}`;
      document.getElementById("job-phase").textContent = state.phase || "";
      const progress = state.progress || {};
      if (progress.totalSteps) {
        // The worker records its progress about once a second; an ended job's metrics say how far it got.
        const last = TERMINAL.has(state.status) && rows.training.size ? Math.max(...rows.training.keys()) + 1 : 0;
        const step = Math.max(progress.step || 0, last);
        const epoch = progress.epoch !== undefined && progress.epoch !== null ? `, epoch ${progress.epoch}` : "";
        document.getElementById("job-progress").textContent = `step ${step} of ${progress.totalSteps}${epoch}`;
        const bar = document.getElementById("job-progress-bar");
        bar.max = progress.totalSteps;
        bar.value = step;
      }
      document.getElementById("job-finish").textContent = finishTime(state);
      const failure = document.getElementById("job-failure");
      failure.hidden = !state.failure_message;
      failure.textContent = state.failure_message || "";
      for (const form of document.querySelectorAll("#job-actions form")) {
        form.hidden = !form.dataset.when.split(" ").includes(state.status);
      }
      const body = document.querySelector("#status-details tbody");
      body.replaceChildren(...Object.entries(state.status_details || {}).map(([phase, details]) => {
        const row = document.createElement("tr");
        for (const text of [phase, details.status || "",
          details.lastModifiedTime ? utc(Date.parse(details.lastModifiedTime)) : ""]) {
          row.insertCell().textContent = text;
        }
        return row;
      }));
    }

    // Once the job has ended: what only then exists (its model, checkpoints, files, last events),
    // taken from the page as the server renders it now.
    async function refreshEnded() {
      try {
        const response = await fetch(window.location.pathname, { credentials: "same-origin" });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        for (const id of ["job-ended", "job-model", "job-files", "job-checkpoints", "job-events"]) {
          const fresh = page.getElementById(id);
          const old = document.getElementById(id);
          if (fresh && old) old.replaceWith(document.importNode(fresh, true));
        }
      } catch { /* the page stays as it is; a reload shows the rest */ }
    }

    function follow() {
      const query = new URLSearchParams({ cursor: `${cursor.training ?? ""}:${cursor.validation ?? ""}` });
      // The page's own ?interval= (seconds; the server allows 0.2 and up) is passed on: tests watch closely.
      const interval = new URLSearchParams(window.location.search).get("interval");
      if (interval) query.set("interval", interval);
      const source = new EventSource(`${root.dataset.liveUrl}?${query}`);
      liveState.textContent = "live";
      source.addEventListener("metrics", (event) => add(JSON.parse(event.data)));
      source.addEventListener("status", (event) => showStatus(JSON.parse(event.data)));
      source.addEventListener("end", () => {
        source.close();
        liveState.textContent = "";
        refreshEnded();
      });
      source.addEventListener("open", () => { liveState.textContent = "live"; });
      source.addEventListener("error", () => { liveState.textContent = "reconnecting…"; });
    }

    (async () => {
      try {
        const series = await tailor.api("GET", root.dataset.metricsUrl);
        add(series);
        showStatus(series);
        if (!TERMINAL.has(series.status)) follow();
      } catch (error) {
        liveState.textContent = `could not read the metrics: ${error.message}`;
      }
    })();
  }

  const form = document.getElementById("job-form");
  if (form) setUpForm(form);
  const job = document.getElementById("job");
  if (job) setUpJob(job);
})();
