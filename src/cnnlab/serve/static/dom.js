// Small helpers every panel shares: building elements (HTML and SVG), a labelled control, numbers as shown, and
// images from a file or the webcam.
import { showError } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

// el("div", {class: "x", onclick: f}, child, "text")
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// The same in SVG's namespace: svg("rect", {x: 1}), svg("text", {}, "label").
export function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

export function labelled(text, control) {
  return el("label", {}, text, " ", control);
}

// A number as the page shows it: 4 significant digits, whole numbers as they are, 1e-17 from rounding as 0, and
// numbers beyond 1e6 in exponent form so that 1e308 never reads as a long row of digits or as 0.
export function round(x) {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e6) return x;
  if (Math.abs(x) < 1e-9) return 0;
  if (Math.abs(x) >= 1e6) return x.toExponential(3).replace(/\.?0+e/, "e");
  return Number(x.toPrecision(4));
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

// A colour legend: a bar with the colours `stops` (CSS colours, left to right) and words under it.
export function colourLegend(stops, labels, title) {
  return el("div", { class: "legend-bar", role: "img", "aria-label": `${title}: ${labels.join(", ")}` },
    el("div", { class: "legend-title" }, title),
    el("div", { class: "legend-colours", style: `background: linear-gradient(to right, ${stops.join(", ")})` }),
    el("div", { class: "legend-labels" }, ...labels.map((label) => el("span", {}, label))));
}
