// Talking to the server: one JSON helper, the error box it fills, and "latest answer wins" for pages that ask again
// before an answer came back.

// A refusal by the server (4xx/5xx): its one-line message, and the status.
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// GET (no body) or POST (a JSON body) to /api/...; a 4xx/5xx throws an ApiError. Unless `quiet` (the caller shows the
// message beside what failed), the message is also shown in the page's error box.
export async function api(path, body, { quiet = false } = {}) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch("api/" + path, options);
  const answer = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) {
    const message = answer.error || JSON.stringify(answer.detail ?? answer);
    if (!quiet) showError(message);
    throw new ApiError(message, response.status);
  }
  if (!quiet) hideError();
  return answer;
}

export function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = false;
}

export function hideError() {
  document.getElementById("error").hidden = true;
}

// Latest answer wins: `const ask = latest(); const answer = await ask(() => api(...)); if (answer === STALE) return;`
// An answer to a question asked before the newest one, or before ask.drop(), comes back as STALE.
export const STALE = Symbol("stale");

export function latest() {
  let asked = 0;
  const ask = async (question) => {
    const mine = ++asked;
    const answer = await question();
    return mine === asked ? answer : STALE;
  };
  ask.drop = () => { asked++; };
  return ask;
}

// Debounced, and at most one request in flight: edits made meanwhile are sent as one, the latest, when it returns.
export function latestOnly(send, wait = 40) {
  let timer = null;
  let busy = false;
  let again = false;
  async function run() {
    if (busy) { again = true; return; }
    busy = true;
    try { await send(); } catch { /* api() or the sender has shown the error */ } finally { busy = false; }
    if (again) { again = false; run(); }
  }
  return () => { clearTimeout(timer); timer = setTimeout(run, wait); };
}
