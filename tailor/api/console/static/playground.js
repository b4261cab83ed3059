// The Playground: one conversation per model column; "Send" streams every column's answer at once
// (compare mode is simply two or more columns). Each answer is a POST whose reply is server-sent
// chat.completion.chunk events, read with fetch + ReadableStream (EventSource cannot POST).
"use strict";

(() => {
  const form = document.getElementById("playground");
  if (!form) return;
  const columns = document.getElementById("pg-columns");
  const addButton = document.getElementById("pg-add");
  const sendButton = document.getElementById("pg-send");
  const history = new WeakMap(); // column -> [{role, content}]
  const PARAM_FIELDS = ["max_tokens", "temperature", "top_p", "stop"];

  const allColumns = () => [...columns.querySelectorAll(".pg-column")];
  const mode = () => form.elements.namedItem("mode").value;

  function relabel() {
    const list = allColumns();
    list.forEach((column, index) => {
      column.setAttribute("aria-label", `Model ${index + 1}`);
      column.querySelector(".pg-remove").hidden = list.length < 2 || mode() !== "compare";
    });
    addButton.hidden = mode() !== "compare";
    form.dataset.columns = String(list.length);
  }

  function addColumn() {
    const first = allColumns()[0];
    const column = first.cloneNode(true);
    column.querySelector(".pg-transcript").replaceChildren();
    column.querySelector(".pg-stats").textContent = "";
    const select = column.querySelector("select");
    const taken = new Set(allColumns().map((c) => c.querySelector("select").value));
    const free = [...select.options].find((option) => !taken.has(option.value));
    select.value = (free ?? select.options[0]).value;
    columns.append(column);
    relabel();
    return column;
  }

  function setMode() {
    if (mode() === "compare" && allColumns().length < 2) addColumn();
    if (mode() === "chat") for (const column of allColumns().slice(1)) column.remove();
    relabel();
  }

  for (const radio of form.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", setMode);
  addButton.addEventListener("click", () => addColumn().querySelector("select").focus());
  columns.addEventListener("click", (event) => {
    const remove = event.target.closest(".pg-remove");
    if (!remove) return;
    remove.closest(".pg-column").remove();
    relabel();
    allColumns()[0].querySelector("select").focus();
  });
  columns.addEventListener("change", (event) => {
    // Another model means another conversation.
    const column = event.target.closest(".pg-column");
    if (column && event.target.matches("select")) clear(column);
  });

  function clear(column) {
    history.delete(column);
    column.querySelector(".pg-transcript").replaceChildren();
    column.querySelector(".pg-stats").textContent = "";
  }
  document.getElementById("pg-clear").addEventListener("click", () => allColumns().forEach(clear));

  // The inference parameters as the OpenAI body takes them; text the server will name if wrong.
  function parameters() {
    const body = {};
    for (const name of ["max_tokens", "temperature", "top_p"]) {
      const raw = form.elements.namedItem(name).value.trim();
      if (raw === "") continue;
      const number = Number(raw);
      body[name] = Number.isFinite(number) ? number : raw;
    }
    const stop = form.elements.namedItem("stop").value.split("\n").filter((line) => line !== "");
    if (stop.length) body.stop = stop;
    return body;
  }

  function clearErrors() {
    for (const name of [...PARAM_FIELDS, "system", "prompt"]) tailor.fieldError(form, name, "");
  }

  // Where a server field path belongs in this form.
  function slotFor(field) {
    if (!field) return null;
    const head = field.split(/[.[]/)[0];
    if (PARAM_FIELDS.includes(head)) return head;
    if (head === "max_completion_tokens") return "max_tokens";
    if (head === "messages") return "prompt";
    return null;
  }

  function bubble(transcript, role, text) {
    const message = document.createElement("div");
    message.className = `pg-message ${role}`;
    const who = Object.assign(document.createElement("span"), { className: "pg-role", textContent: role === "user" ? "You" : "Model" });
    const content = Object.assign(document.createElement("div"), { className: role === "user" ? "pg-text" : "pg-answer", textContent: text });
    message.append(who, content);
    transcript.append(message);
    return content;
  }

  // Split an SSE stream into its data payloads.
  async function* events(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data) yield data;
      }
    }
  }

  async function ask(column, system, prompt, params) {
    const model = column.querySelector("select").value;
    const transcript = column.querySelector(".pg-transcript");
    const stats = column.querySelector(".pg-stats");
    const past = history.get(column) ?? [];
    const messages = [...(system ? [{ role: "system", content: system }] : []), ...past, { role: "user", content: prompt }];
    bubble(transcript, "user", prompt);
    const answer = bubble(transcript, "assistant", "");
    answer.dataset.state = "waiting";
    answer.dataset.model = model;
    column.dataset.state = "waiting";
    stats.textContent = "Working…";
    const started = performance.now();
    let firstToken = null;
    let text = "";
    let usage = null;
    let finishReason = null;
    const finish = (state, note) => {
      answer.dataset.state = state;
      column.dataset.state = state;
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      const parts = [];
      if (usage) parts.push(`${usage.completion_tokens} tokens (prompt ${usage.prompt_tokens})`);
      parts.push(`${seconds} s`);
      if (firstToken !== null) parts.push(`first token ${(firstToken / 1000).toFixed(2)} s`);
      if (finishReason === "length") parts.push("stopped at max tokens");
      if (note) parts.push(note);
      stats.textContent = parts.join(" · ");
      if (usage) stats.dataset.tokens = String(usage.completion_tokens);
      stats.dataset.seconds = seconds;
    };
    let response;
    try {
      response = await fetch(form.dataset.chatUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": tailor.csrf(), Accept: "text/event-stream" },
        body: JSON.stringify({ model, messages, stream: true, ...params }),
      });
    } catch (error) {
      answer.textContent = `Could not reach the server: ${error.message}`;
      answer.classList.add("error");
      return finish("error");
    }
    if (!response.ok) {
      const problem = (await response.json().catch(() => ({}))).error ?? { message: `${response.status} ${response.statusText}` };
      const slot = slotFor(problem.field);
      if (slot) tailor.fieldError(form, slot, problem.message);
      answer.parentElement.remove();
      transcript.lastElementChild?.remove(); // the question was not asked: only the refusal stays
      const note = bubble(transcript, "assistant", problem.message);
      note.parentElement.classList.add("refused");
      note.classList.add("error");
      note.dataset.state = "error";
      return finish("error");
    }
    answer.dataset.state = "streaming";
    column.dataset.state = "streaming";
    try {
      for await (const data of events(response)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message ?? "The answer broke off.");
        if (chunk.usage) usage = chunk.usage;
        if (chunk.choices?.[0]?.finish_reason) finishReason = chunk.choices[0].finish_reason;
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          if (firstToken === null) firstToken = performance.now() - started;
          text += delta;
          answer.textContent = text;
        }
      }
    } catch (error) {
      const broke = Object.assign(document.createElement("div"), { className: "error", textContent: error.message });
      answer.after(broke);
      return finish("error", "broke off");
    }
    history.set(column, [...past, { role: "user", content: prompt }, { role: "assistant", content: text }]);
    return finish("done");
  }

  async function send() {
    clearErrors();
    const prompt = form.elements.namedItem("prompt").value;
    if (!prompt.trim()) {
      tailor.fieldError(form, "prompt", "Write a message first.");
      form.elements.namedItem("prompt").focus();
      return;
    }
    for (const refused of columns.querySelectorAll(".pg-message.refused")) refused.remove();
    const system = form.elements.namedItem("system").value.trim();
    const params = parameters();
    sendButton.disabled = true;
    sendButton.textContent = "Answering…";
    form.dataset.busy = "true";
    try {
      await Promise.all(allColumns().map((column) => ask(column, system, prompt, params)));
    } finally {
      sendButton.disabled = false;
      sendButton.textContent = "Send";
      form.dataset.busy = "false";
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  form.elements.namedItem("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); send(); }
  });
  relabel();
})();
