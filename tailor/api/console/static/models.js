// The Models page: deploy without leaving the page (field errors in place), the cost estimate as
// units and commitment change, and deployment statuses followed until each is loaded (no reload).
"use strict";

(() => {
  const POLL_MS = 1500;
  const LOADING = new Set(["Creating", "Updating"]);
  const SERVING = new Set(["InService", "Active", "Updating"]);
  const table = document.querySelector("table.deployments");
  let polling = null;

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    return td;
  }

  function row(d, names) {
    const tr = document.createElement("tr");
    tr.dataset.arn = d.arn;
    const name = cell();
    const label = Object.assign(document.createElement("span"), { className: "deployment-name", textContent: d.name });
    const arn = Object.assign(document.createElement("code"), { className: "arn", textContent: d.arn });
    name.append(label, document.createElement("br"), arn);
    const kind = cell(d.kindLabel);
    if (d.modelUnits) {
      const units = Object.assign(document.createElement("span"), { className: "muted",
        textContent: `${d.modelUnits} unit${d.modelUnits === 1 ? "" : "s"}${d.commitment ? `, ${d.commitment}` : ""}` });
      kind.append(document.createElement("br"), units);
    }
    const status = cell();
    const badge = Object.assign(document.createElement("span"), { className: `status ${d.status}`, textContent: d.status });
    badge.dataset.status = d.status;
    badge.setAttribute("role", "status");
    const failure = Object.assign(document.createElement("div"), { className: "failure muted", textContent: d.failure ?? "" });
    status.append(badge, failure);
    const actions = cell(undefined, "actions");
    if (SERVING.has(d.status)) {
      const link = Object.assign(document.createElement("a"), { textContent: "Try it",
        href: `/console/playground?model=${encodeURIComponent(d.arn)}` });
      actions.append(link);
    }
    const form = Object.assign(document.createElement("form"), { method: "post", action: "/console/deployments/delete" });
    form.className = "inline";
    for (const [key, value] of [["csrf_token", tailor.csrf()], ["kind", d.kind], ["arn", d.arn]]) {
      form.append(Object.assign(document.createElement("input"), { type: "hidden", name: key, value }));
    }
    const remove = Object.assign(document.createElement("button"), { type: "submit", className: "link", textContent: "Delete" });
    remove.setAttribute("aria-label", `Delete deployment ${d.name}`);
    form.append(remove);
    actions.append(form);
    tr.append(name, kind, cell(names[d.modelArn] ?? d.modelArn), status, cell(d.created), actions);
    return tr;
  }

  // Redraw the table from the JSON list; keep polling while any deployment is still loading.
  async function refresh() {
    if (!table) return;
    let answer;
    try {
      answer = await tailor.api("GET", table.dataset.deploymentsUrl);
    } catch (error) {
      table.dataset.error = error.message;
      return schedule(true);
    }
    const only = table.dataset.modelArn;
    const names = JSON.parse(table.dataset.modelNames || "{}");
    const shown = answer.deployments.filter((d) => !only || d.modelArn === only);
    const body = table.tBodies[0];
    if (shown.length === 0) {
      const empty = Object.assign(document.createElement("tr"), { className: "empty" });
      const td = cell("No deployments yet.", "muted");
      td.colSpan = 6;
      empty.append(td);
      body.replaceChildren(empty);
    } else {
      body.replaceChildren(...shown.map((d) => row(d, names)));
    }
    table.dataset.refreshed = String(Date.now());
    schedule(shown.some((d) => LOADING.has(d.status)));
  }

  function schedule(again) {
    clearTimeout(polling);
    polling = again ? setTimeout(refresh, POLL_MS) : null;
  }

  function formFields(form) {
    const fields = {};
    for (const [key, value] of new FormData(form)) if (key !== "csrf_token") fields[key] = value;
    return fields;
  }

  function showErrors(form, error) {
    const problem = form.querySelector(".form-error");
    const named = error.field && form.querySelector(`[data-error-for="${CSS.escape(error.field)}"]`);
    if (named) tailor.fieldError(form, error.field, error.message);
    for (const [field, message] of Object.entries(error.fields ?? {})) tailor.fieldError(form, field, message);
    if (problem && !named) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
  }

  function clearErrors(form) {
    for (const slot of form.querySelectorAll("[data-error-for]")) tailor.fieldError(form, slot.dataset.errorFor, "");
    const problem = form.querySelector(".form-error");
    if (problem) problem.hidden = true;
  }

  for (const form of document.querySelectorAll("form.deploy")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      const button = form.querySelector("button[type=submit]");
      const label = button.textContent;
      button.disabled = true;
      button.textContent = "Deploying…";
      try {
        await tailor.api("POST", form.dataset.api, formFields(form));
        form.dataset.deployed = "true";
        await refresh();
        document.getElementById("deployments-section")?.scrollIntoView({ block: "start" });
      } catch (error) {
        showErrors(form, error);
      } finally {
        button.disabled = false;
        button.textContent = label;
      }
    });
  }

  // The cost estimate follows the units and the commitment.
  const provisioned = document.getElementById("deploy-provisioned");
  if (provisioned) {
    const cost = provisioned.querySelector(".cost");
    const estimate = tailor.debounce(async () => {
      const units = provisioned.elements.namedItem("modelUnits").value;
      const commitment = provisioned.elements.namedItem("commitmentDuration").value;
      const query = new URLSearchParams({ modelUnits: units, commitmentDuration: commitment });
      try {
        const answer = await tailor.api("GET", `${cost.dataset.estimateUrl}?${query}`);
        tailor.fieldError(provisioned, "modelUnits", "");
        tailor.fieldError(provisioned, "commitmentDuration", "");
        cost.textContent = answer.text;
      } catch (error) {
        if (error.field) tailor.fieldError(provisioned, error.field, error.message);
        cost.textContent = "";
      }
    }, 200);
    provisioned.elements.namedItem("modelUnits").addEventListener("input", estimate);
    provisioned.elements.namedItem("commitmentDuration").addEventListener("change", estimate);
  }

  // Deleting a model removes its weights: ask once.
  document.querySelector("form.delete-model")?.addEventListener("submit", (event) => {
    if (!window.confirm(event.target.dataset.confirm)) event.preventDefault();
  });

  // Exports: queue one in place, then follow the model's exports until each is done; a finished
  // one shows its signed download link.
  const exportForm = document.getElementById("export-form");
  const exportsTable = document.querySelector("table.exports");
  let exportPolling = null;

  function exportRow(e) {
    const tr = document.createElement("tr");
    tr.dataset.exportId = e.exportId;
    const status = cell();
    const badge = Object.assign(document.createElement("span"), { className: `status ${e.status}`, textContent: e.status });
    badge.dataset.exportStatus = e.status;
    badge.setAttribute("role", "status");
    const note = e.failureMessage ?? (e.status === "InProgress" ? e.stage ?? "" : "");
    status.append(badge, Object.assign(document.createElement("div"), { className: "muted", textContent: note }));
    const download = cell();
    if (e.downloadUrl) {
      const link = Object.assign(document.createElement("a"), { href: e.downloadUrl, textContent: e.fileName });
      link.setAttribute("download", "");
      download.append(link);
    }
    tr.append(cell(e.format), status, cell(e.sizeBytes ? String(e.sizeBytes) : ""), cell(e.createdAt), download);
    return tr;
  }

  async function refreshExports() {
    if (!exportsTable) return;
    let answer;
    try {
      answer = await tailor.api("GET", exportsTable.dataset.exportsUrl);
    } catch (error) {
      exportsTable.dataset.error = error.message;
      return scheduleExports(true);
    }
    const body = exportsTable.tBodies[0];
    if (answer.exports.length === 0) return;
    body.replaceChildren(...answer.exports.map(exportRow));
    scheduleExports(answer.exports.some((e) => e.status === "InProgress" || e.status === "Stopping"));
  }

  function scheduleExports(again) {
    clearTimeout(exportPolling);
    exportPolling = again ? setTimeout(refreshExports, POLL_MS) : null;
  }

  exportForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(exportForm);
    const button = exportForm.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await tailor.api("POST", exportForm.dataset.api, formFields(exportForm));
      await refreshExports();
    } catch (error) {
      showErrors(exportForm, error);
    } finally {
      button.disabled = false;
    }
  });

  if (exportsTable && [...exportsTable.querySelectorAll("[data-export-status]")]
    .some((badge) => badge.dataset.exportStatus === "InProgress")) {
    scheduleExports(true);
  }

  if (table && [...table.querySelectorAll("[data-status]")].some((badge) => LOADING.has(badge.dataset.status))) {
    schedule(true);
  }
})();
