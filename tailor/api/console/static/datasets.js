// The Datasets page: upload, validate (a table of every problem), and the training view (the
// rendered template with the loss-carrying tokens in <mark class="loss">). Text from the server
// is only ever set with textContent, never parsed as HTML, except the bucket list, which the
// server renders (autoescaped) and the page swaps in after an upload.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const uploadForm = $("upload-form");
  const checkForm = $("check-form");

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function clearErrors(form) {
    form.querySelectorAll("[data-error-for]").forEach((slot) => tailor.fieldError(form, slot.dataset.errorFor, ""));
  }

  // Show a failed call: under its field when the server named one, else in the status line.
  function showError(form, status, error) {
    const field = (error.field || "").split(/[.[]/)[0];
    if (field && form.querySelector(`[data-error-for="${CSS.escape(field)}"]`)) {
      tailor.fieldError(form, field, error.message);
      status.textContent = "";
    } else {
      status.textContent = error.message;
    }
    status.classList.toggle("bad", !field);
  }

  function busy(status, buttons, text) {
    status.classList.remove("bad");
    status.textContent = text;
    status.classList.toggle("working", Boolean(text));
    buttons.forEach((button) => { button.disabled = Boolean(text); });
  }

  function modelLabel() {
    const select = checkForm.elements.base_model;
    return select.selectedOptions[0]?.textContent ?? select.value;
  }

  // Results shown for another dataset than the one now checked would mislead: hide them.
  function forget(uri) {
    for (const id of ["validation", "training-view"]) {
      if ($(id).dataset.uri !== uri) $(id).hidden = true;
    }
  }

  function show(id, subjectId, uri, subject) {
    $(id).dataset.uri = uri;
    $(subjectId).textContent = subject;
    $(id).hidden = false;
  }

  // ---------------------------------------------------------------- upload

  async function refreshList() {
    const response = await fetch("/console/datasets/list", { credentials: "same-origin" });
    if (!response.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await response.text(); // server-rendered and autoescaped
    const fresh = holder.querySelector("#dataset-list");
    if (fresh) $("dataset-list").replaceWith(fresh);
  }

  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(uploadForm);
    const status = $("upload-status");
    const uri = uploadForm.elements.uri.value.trim();
    if (!uri) { tailor.fieldError(uploadForm, "uri", "Name where the file goes: s3://BUCKET/KEY.jsonl."); return; }
    if (!uploadForm.elements.file.files.length) { tailor.fieldError(uploadForm, "file", "Choose a file."); return; }
    const body = new FormData();
    body.append("uri", uri);
    body.append("file", uploadForm.elements.file.files[0]);
    busy(status, [$("upload-button")], "Uploading…");
    try {
      const answer = await tailor.api("POST", "/console/api/datasets/upload", body);
      busy(status, [$("upload-button")], "");
      status.textContent = `Uploaded ${answer.uri} (${answer.size.toLocaleString()} bytes).`;
      $("check-uri").value = answer.uri;
      await refreshList();
    } catch (error) {
      busy(status, [$("upload-button")], "");
      showError(uploadForm, status, error);
    }
  });

  // ---------------------------------------------------------------- validate

  function cell(text, className) {
    return el("td", className ? { class: className, text: text ?? "" } : { text: text ?? "" });
  }

  function drawReports(answer) {
    const body = $("validation-body");
    body.replaceChildren();
    for (const report of answer.reports) {
      body.append(el("p", { class: report.ok ? "ok summary" : "error summary", text: report.summary }));
      for (const note of report.notes) body.append(el("p", { class: "muted", text: `Note: ${note}` }));
      if (!report.problems.length) continue;
      const rows = report.problems.map((problem) => {
        const row = el("tr", { "data-line": problem.line ?? "", "data-field": problem.field ?? "" },
          cell(problem.file, "mono file"), cell(problem.line ?? "whole file", "num"),
          cell(problem.field ?? "—", "mono"), cell(problem.message));
        return row;
      });
      body.append(el("div", { class: "table-wrap" },
        el("table", { class: "problems" },
          el("caption", { text: `${report.problems.length} problem${report.problems.length === 1 ? "" : "s"} in ${report.file}` }),
          el("thead", {}, el("tr", {},
            el("th", { scope: "col", text: "File" }), el("th", { scope: "col", class: "num", text: "Line" }),
            el("th", { scope: "col", text: "Field" }), el("th", { scope: "col", text: "Problem" }))),
          el("tbody", {}, ...rows))));
    }
  }

  function checkBody() {
    const values = Object.fromEntries(new FormData(checkForm).entries());
    return { uri: values.uri.trim(), kind: values.kind, base_model: values.base_model,
             validation_uri: values.validation_uri.trim() || null, first: Number(values.first) || 10 };
  }

  async function validate() {
    clearErrors(checkForm);
    const status = $("check-status");
    const request = checkBody();
    if (!request.uri) { tailor.fieldError(checkForm, "uri", "Name a dataset: s3://BUCKET/KEY.jsonl."); return; }
    forget(request.uri);
    busy(status, [$("validate-button"), $("preview-button")], "Validating… working…");
    try {
      const answer = await tailor.api("POST", "/console/api/datasets/validate", request);
      busy(status, [$("validate-button"), $("preview-button")], "");
      drawReports(answer);
      show("validation", "validation-subject", request.uri,
           `${request.uri} as ${request.kind} data for ${modelLabel()}`);
      $("validation").dataset.ok = String(answer.ok);
      $("validation-title").focus();
    } catch (error) {
      busy(status, [$("validate-button"), $("preview-button")], "");
      showError(checkForm, status, error);
    }
  }

  // ---------------------------------------------------------------- training view

  function drawRecords(records) {
    const body = $("training-body");
    body.replaceChildren();
    if (!records.length) body.append(el("p", { class: "muted", text: "The file has no records." }));
    const shown = records.filter((record) => !record.error);
    if (shown.length) {
      const sum = (name) => shown.reduce((total, record) => total + record[name], 0);
      body.append(el("p", { class: "totals", id: "training-totals",
                            text: `${shown.length} record${shown.length === 1 ? "" : "s"} shown: `
                                  + `${sum("tokens").toLocaleString()} tokens, ${sum("targets").toLocaleString()} `
                                  + "of them targets (carrying loss)." }));
    }
    for (const record of records) {
      const card = el("article", { class: "record", "data-line": record.line });
      const heading = el("h3", { text: `Line ${record.line}` });
      card.append(heading);
      if (record.error) {
        card.classList.add("failed");
        card.append(el("p", { class: "error", text: record.error }));
      } else {
        const counts = `${record.tokens.toLocaleString()} tokens · ${record.targets.toLocaleString()} targets`
          + (record.windows > 1 ? ` · first of ${record.windows} windows` : "");
        heading.append(" ", el("span", { class: "counts", "data-tokens": record.tokens,
                                         "data-targets": record.targets, text: counts }));
        const text = el("pre", { class: "rendered" });
        for (const [piece, learned] of record.segments) {
          text.append(learned ? el("mark", { class: "loss", text: piece }) : el("span", { text: piece }));
        }
        card.append(text);
      }
      body.append(card);
    }
  }

  async function preview() {
    clearErrors(checkForm);
    const status = $("check-status");
    const request = checkBody();
    if (!request.uri) { tailor.fieldError(checkForm, "uri", "Name a dataset: s3://BUCKET/KEY.jsonl."); return; }
    forget(request.uri);
    busy(status, [$("validate-button"), $("preview-button")],
         "Rendering… working… (the first preview starts the engine: several seconds)");
    $("training-view").setAttribute("aria-busy", "true");
    try {
      const answer = await tailor.api("POST", "/console/api/datasets/preview",
                                      { uri: request.uri, kind: request.kind, base_model: request.base_model,
                                        first: request.first });
      busy(status, [$("validate-button"), $("preview-button")], "");
      drawRecords(answer.records);
      show("training-view", "training-subject", request.uri,
           `The first ${answer.records.length} record${answer.records.length === 1 ? "" : "s"} of ${request.uri}, `
           + `rendered for ${request.kind} `
           + `with the chat template of ${modelLabel()}.`);
      $("training-title").focus();
    } catch (error) {
      busy(status, [$("validate-button"), $("preview-button")], "");
      showError(checkForm, status, error);
    } finally {
      $("training-view").removeAttribute("aria-busy");
    }
  }

  checkForm.addEventListener("submit", (event) => { event.preventDefault(); validate(); });
  $("preview-button").addEventListener("click", preview);

  // The list's buttons fill in the dataset and run the check.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("#dataset-list button[data-action]");
    if (!button) return;
    $("check-uri").value = button.dataset.uri;
    if (button.dataset.action === "validate") validate(); else preview();
  });
})();
