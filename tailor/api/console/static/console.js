// Helpers every console page uses: JSON calls with the session's CSRF token, and field errors.
"use strict";

const tailor = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

  // fetch() a console JSON route; resolves to the JSON answer, or throws an Error carrying the
  // server's {message, field, fields}.
  async function api(method, url, body) {
    const options = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const problem = answer.error ?? { message: `${response.status} ${response.statusText}` };
      throw Object.assign(new Error(problem.message), { field: problem.field, fields: problem.fields ?? {},
                                                        status: response.status });
    }
    return answer;
  }

  // Show ``message`` under the input named ``name`` in ``form`` (an element with
  // data-error-for="name"), marking the input invalid; an empty message clears it.
  function fieldError(form, name, message) {
    const input = form.elements.namedItem(name);
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (input && input.setAttribute) input.setAttribute("aria-invalid", message ? "true" : "false");
    if (slot) slot.textContent = message ?? "";
  }

  // Run ``fn`` ``delay`` ms after the last call (validation as you type).
  function debounce(fn, delay = 300) {
    let timer;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), delay); };
  }

  return { csrf, api, fieldError, debounce };
})();
window.tailor = tailor;
