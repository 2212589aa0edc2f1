// The page's frame: tabs, one JSON helper, errors shown in one place, and drawing helpers the panels share.
// Each panel is a module (explore.js, kernels.js, ...) exporting init(section), called the first time it is shown.

const panels = {
  explore: () => import("./explore.js"),
  kernels: () => import("./kernels.js"),
  convolution: () => import("./convolution.js"),
  monitor: () => import("./monitor.js"),
  datasets: () => import("./datasets.js"),
};
const started = new Set();

async function show(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.panel === name);
  }
  for (const section of document.querySelectorAll(".panel")) {
    section.classList.toggle("active", section.id === name);
  }
  if (!started.has(name)) {
    started.add(name);
    const module = await panels[name]();
    await module.init(document.getElementById(name));
  }
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
}

// GET (no body) or POST (a JSON body) to /api/...; a 4xx/5xx shows its one-line error and throws.
export async function api(path, body) {
  const options = body === undefined ? {} :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch("api/" + path, options);
  const answer = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) {
    showError(answer.error || JSON.stringify(answer.detail ?? answer));
    throw new Error(answer.error);
  }
  hideError();
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

// Debounced, and at most one request in flight: edits made meanwhile are sent as one, the latest, when it returns.
export function latestOnly(send, wait = 40) {
  let timer = null;
  let busy = false;
  let again = false;
  async function run() {
    if (busy) { again = true; return; }
    busy = true;
    try { await send(); } catch { /* api() has shown the error */ } finally { busy = false; }
    if (again) { again = false; run(); }
  }
  return () => { clearTimeout(timer); timer = setTimeout(run, wait); };
}

// Small DOM builder: el("div", {class: "x"}, child, "text").
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// A File (upload, drop) -> data URL, the form every image endpoint takes.
export function fileToDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// One frame of the webcam as a data URL, or null (no camera, or permission refused: said in the error box).
export async function webcamFrame() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true });
    const video = el("video", { playsinline: "" });
    video.srcObject = stream;
    await video.play();
    const canvas = el("canvas", { width: video.videoWidth, height: video.videoHeight });
    canvas.getContext("2d").drawImage(video, 0, 0);
    stream.getTracks().forEach((track) => track.stop());
    return canvas.toDataURL("image/png");
  } catch (error) {
    showError(`no webcam picture: ${error.message}`);
    return null;
  }
}

document.getElementById("tabs").addEventListener("click", (event) => {
  if (event.target.dataset.panel) show(event.target.dataset.panel);
});
// a link to #monitor, or the browser's back button, opens that tab
window.addEventListener("hashchange", () => {
  if (location.hash.slice(1) in panels) show(location.hash.slice(1));
});
show(location.hash.slice(1) in panels ? location.hash.slice(1) : "explore");
