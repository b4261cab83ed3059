// The Graders page: edit an OpenAI grader object as JSON, validate it and try it on an answer
// through the console's JSON routes, and keep drafts in this browser (localStorage, the key the
// page names; the Jobs and Evaluations pages read the same drafts).
"use strict";

(() => {
  const editor = document.getElementById("grader-editor");
  if (!editor) return;
  const key = editor.dataset.draftsKey;
  const starters = JSON.parse(document.getElementById("grader-starters").textContent);
  const $ = (id) => document.getElementById(id);
  const text = $("grader-json"), nameInput = $("grader-draft-name"), problems = $("grader-problems");

  const drafts = () => { try { return JSON.parse(localStorage.getItem(key) || "{}") || {}; } catch { return {}; } };
  const keep = (all) => localStorage.setItem(key, JSON.stringify(all));

  function show(target, kind, content) {
    target.replaceChildren();
    if (!content) return;
    const box = document.createElement("div");
    box.className = kind;
    if (typeof content === "string") box.textContent = content; else box.append(...content);
    target.append(box);
  }

  // The definition in the editor, or null (the JSON problem shown under it).
  function definition() {
    try {
      const value = JSON.parse(text.value);
      text.setAttribute("aria-invalid", "false");
      return value;
    } catch (error) {
      text.setAttribute("aria-invalid", "true");
      show(problems, "error", `Not JSON: ${error.message}`);
      return null;
    }
  }

  function load(value, name) {
    text.value = JSON.stringify(value, null, 2);
    nameInput.value = name;
    show(problems, "", null);
    show($("grader-result"), "", null);
  }

  function listDrafts() {
    const all = drafts(), names = Object.keys(all).sort();
    const options = $("grader-draft-options"), list = $("grader-drafts");
    options.replaceChildren(...names.map((name) => new Option(name, `draft:${name}`)));
    if (!names.length) {
      list.replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "None yet." }));
      return;
    }
    list.replaceChildren(...names.map((name) => {
      const item = document.createElement("li");
      const open = Object.assign(document.createElement("button"), { type: "button", className: "link",
                                                                     textContent: name });
      open.dataset.draft = name;
      open.addEventListener("click", () => load(drafts()[name], name));
      item.append(open, Object.assign(document.createElement("span"), { className: "muted",
                                                                        textContent: `(${all[name]?.type ?? "?"})` }));
      return item;
    }));
  }

  // Errors by JSON path, as the server names them (grader.input, grader.graders.x.source).
  function problemList(error) {
    const entries = Object.entries(error.fields || {});
    if (!entries.length) return error.message;
    const list = document.createElement("ul");
    list.className = "problems";
    for (const [path, problem] of entries) {
      const item = document.createElement("li");
      item.append(Object.assign(document.createElement("code"), { textContent: path }), `: ${problem}`);
      list.append(item);
    }
    const head = document.createElement("div");
    head.textContent = entries.length === 1 ? "1 problem:" : `${entries.length} problems:`;
    return [head, list];
  }

  async function validate() {
    const grader = definition();
    if (grader === null) return;
    const button = $("grader-validate");
    button.disabled = true;
    show(problems, "muted", "Checking…");
    try {
      const answer = await tailor.api("POST", "/console/api/graders/validate", { grader });
      show(problems, "ok", `Valid ${answer.grader.type} grader “${answer.grader.name}”.`);
    } catch (error) {
      show(problems, "error", problemList(error));
    } finally {
      button.disabled = false;
    }
  }

  async function runTest(event) {
    event.preventDefault();
    const grader = definition();
    if (grader === null) return;
    const form = $("grader-test"), result = $("grader-result");
    let item;
    try {
      item = $("grader-item").value.trim() ? JSON.parse($("grader-item").value) : {};
      tailor.fieldError(form, "item", "");
    } catch (error) {
      tailor.fieldError(form, "item", `Not JSON: ${error.message}`);
      return;
    }
    const button = $("grader-run");
    button.disabled = true;
    show(result, "muted", "Grading… (a model judge may take a few seconds)");
    try {
      const answer = await tailor.api("POST", "/console/api/graders/run",
                                      { grader, model_sample: $("grader-sample").value, item });
      const parts = [Object.assign(document.createElement("div"), { className: "reward",
                                                                    textContent: `Reward ${answer.reward}` })];
      parts[0].dataset.reward = String(answer.reward);
      const errors = Object.entries(answer.metadata.errors).filter(([, v]) => v === true).map(([k]) => k);
      const details = answer.metadata.errors.details || answer.metadata.errors.python_grader_runtime_error_details
        || answer.metadata.errors.model_grader_server_error_details;
      if (errors.length) parts.push(`Errors: ${errors.join(", ")}${details ? ` — ${details}` : ""}`);
      const subs = Object.entries(answer.sub_rewards || {});
      if (subs.length) parts.push(Object.assign(document.createElement("div"),
        { textContent: `Sub-rewards: ${subs.map(([k, v]) => `${k} ${v}`).join(", ")}` }));
      show(result, errors.length ? "error" : answer.reward > 0 ? "ok" : "neutral", parts);
    } catch (error) {
      show(result, "error", problemList(error));
    } finally {
      button.disabled = false;
    }
  }

  function save() {
    const grader = definition();
    const name = nameInput.value.trim();
    if (grader === null) return;
    if (!name) { nameInput.setAttribute("aria-invalid", "true"); nameInput.focus(); return; }
    nameInput.setAttribute("aria-invalid", "false");
    keep({ ...drafts(), [name]: grader });
    listDrafts();
    show(problems, "ok", `Saved draft “${name}” in this browser.`);
  }

  function remove() {
    const all = drafts(), name = nameInput.value.trim();
    if (!(name in all)) { show(problems, "error", `No draft named “${name}”.`); return; }
    delete all[name];
    keep(all);
    listDrafts();
    show(problems, "ok", `Deleted draft “${name}”.`);
  }

  $("grader-load").addEventListener("click", () => {
    const [kind, name] = $("grader-start").value.split(/:(.*)/s);
    if (kind === "starter") load(starters[name], starters[name].name);
    else if (drafts()[name]) load(drafts()[name], name);
  });
  $("grader-validate").addEventListener("click", validate);
  $("grader-save").addEventListener("click", save);
  $("grader-delete").addEventListener("click", remove);
  $("grader-test").addEventListener("submit", runTest);
  for (const button of document.querySelectorAll(".copy-source")) {
    button.addEventListener("click", async () => {
      const source = $(button.dataset.target).textContent;
      try { await navigator.clipboard.writeText(source); button.textContent = "Copied"; }
      catch { button.textContent = "Select the text below to copy"; }
    });
  }
  window.addEventListener("storage", (event) => { if (event.key === key) listDrafts(); });

  listDrafts();
  const first = Object.keys(drafts()).sort()[0];
  if (first) load(drafts()[first], first); else load(starters.string_check, starters.string_check.name);
})();
