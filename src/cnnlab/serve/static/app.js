// The page's router: the tabs, and each panel's module loaded and started the first time it is shown.
// Each panel is a module (explore.js, kernels.js, ...) exporting init(section); the helpers they share live in
// api.js (the server), dom.js (elements, numbers, images) and glossary.js (terms, lessons).
import { startTooltips } from "./glossary.js";

// Kept for modules written against the old app.js, which was also the helper library; new code imports the helpers'
// own modules.
export { api, hideError, latestOnly, showError } from "./api.js";
export { el, fileToDataURL, webcamFrame } from "./dom.js";

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

startTooltips();
document.getElementById("tabs").addEventListener("click", (event) => {
  if (event.target.dataset.panel) show(event.target.dataset.panel);
});
// a link to #monitor, or the browser's back button, opens that tab
window.addEventListener("hashchange", () => {
  if (location.hash.slice(1) in panels) show(location.hash.slice(1));
});
show(location.hash.slice(1) in panels ? location.hash.slice(1) : "explore");
