// Convolution arithmetic: the window sliding over the padded input one position at a time, its multiply-add
// written out and the output filling in. The sizes and their explanation come from the server (one formula, in
// cnnlab.filters), and so do the output numbers (PyTorch's convolution); only the stepping happens here.
// Below it, the lesson's conv layer on a picture: four filters, then ReLU, then 2x2 max-pooling.
import { api, el, fileToDataURL, latestOnly } from "./app.js";

const SVG = "http://www.w3.org/2000/svg";
const STEP_MS = 700;     // one window position per step while playing
const TYPING_MS = 150;  // a size is sent once the typing pauses, so "12" is not first drawn as 1

let plan = null;        // the server's answer for the current sizes
let grids = null;       // the drawn input / kernel / output cells
let position = 0;       // the output cell the window is on: row * output + column
let timer = null;       // set while playing
let seed = 0;           // picks the example numbers; "New numbers" counts it up
let view;

export async function init(section) {
  const { samples } = await api("kernels");
  view = build(section, samples);
  await Promise.all([loadSizes(), loadLayer()]);
}

function sizeQuery() {
  return ["size", "kernel", "stride", "padding", "dilation"]
    .map((name) => `${name}=${clamp(view[name])}`).join("&") + `&seed=${seed}`;
}

// A number outside the control's range is sent as the nearest one in it (and shown so once typed), so a request
// always has valid sizes.
function clamp(input) {
  return Math.min(Number(input.max), Math.max(Number(input.min), Math.round(Number(input.value) || 0)));
}

const loadSizes = latestOnly(async () => {
  plan = await api("convolution/sizes?" + sizeQuery());
  pause();
  view.formula.textContent = plan.formula.join("\n");
  view.explanation.replaceChildren(...plan.explanation.map((line) => el("p", {}, line)));
  view.outputCaption.textContent = plan.fits ? `output ${plan.output}x${plan.output}` : "no output";
  drawGrids();
  for (const button of [view.play, view.step, view.reset]) button.disabled = !plan.fits;
  if (plan.fits) moveTo(0);
  else view.sum.textContent = "The window does not fit: nothing to compute.";
}, TYPING_MS);

function drawGrids() {
  const { size, padding, kernel, output } = plan;
  const padded = size + 2 * padding;
  const cell = Math.max(18, Math.min(36, Math.floor(430 / padded)));
  const inside = (r, c) => r >= padding && c >= padding && r < padding + size && c < padding + size;
  const input = grid(padded, padded, cell, (r, c) => (inside(r, c) ? plan.input[r - padding][c - padding] : 0),
    (r, c) => (inside(r, c) ? "" : "pad"));
  const weights = grid(kernel, kernel, cell, (r, c) => plan.weights[r][c], (r, c) => signClass(plan.weights[r][c]));
  const result = grid(output, output, cell, () => "", () => "");
  input.svg.append(svgElement("rect", { class: "window", rx: 3 }));
  grids = { input, weights, result, cell };
  view.input.replaceChildren(input.svg);
  view.weights.replaceChildren(weights.svg);
  view.output.replaceChildren(result.svg);
  view.inputCaption.textContent = `input ${size}x${size}` + (padding ? `, padded by ${padding} (zeros, dashed)` : "");
  view.weightsCaption.textContent = `kernel ${kernel}x${kernel}` +
    (plan.dilation > 1 ? `, dilation ${plan.dilation}: spans ${plan.span}x${plan.span}` : "");
}

// A rows x cols grid of numbered squares; cells[r][c] = {rect, text}.
function grid(rows, cols, cell, value, className) {
  const svg = svgElement("svg", { width: cols * cell + 2, height: rows * cell + 2, class: "grid" });
  const cells = [];
  for (let r = 0; r < rows; r++) {
    cells.push([]);
    for (let c = 0; c < cols; c++) {
      const rect = svgElement("rect", { x: c * cell + 1, y: r * cell + 1, width: cell, height: cell,
        class: className(r, c), "data-row": r, "data-col": c });
      const text = svgElement("text", { x: (c + 0.5) * cell + 1, y: (r + 0.5) * cell + 1,
        "font-size": Math.round(cell * 0.45) });
      text.textContent = value(r, c);
      svg.append(rect, text);
      cells[r].push({ rect, text });
    }
  }
  return { svg, cells };
}

function svgElement(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function signClass(value) {
  return value > 0 ? "positive" : value < 0 ? "negative" : "zero";
}

// Put the window on output cell `index`: mark the input cells it multiplies, write out the sum, fill the output.
function moveTo(index) {
  const { output, stride, dilation, kernel } = plan;
  position = index;
  const row = Math.floor(index / output);
  const col = index % output;
  for (const cells of [grids.input.cells, grids.result.cells]) {
    for (const { rect } of cells.flat()) rect.classList.remove("tap", "current");
  }
  grids.result.cells.flat().forEach(({ text }, i) => {
    text.textContent = i <= index ? round(plan.result[Math.floor(i / output)][i % output]) : "";
  });
  grids.result.cells[row][col].rect.classList.add("current");
  const terms = [];
  for (let i = 0; i < kernel; i++) {
    terms.push([]);
    for (let j = 0; j < kernel; j++) {
      const tap = grids.input.cells[row * stride + i * dilation][col * stride + j * dilation];
      tap.rect.classList.add("tap");
      terms[i].push(`${tap.text.textContent}×${wrapNegative(plan.weights[i][j])}`);
    }
  }
  const windowBox = grids.input.svg.querySelector(".window");
  const cell = grids.cell;
  const side = plan.span * cell;
  Object.entries({ x: col * stride * cell + 1, y: row * stride * cell + 1, width: side, height: side })
    .forEach(([key, value]) => windowBox.setAttribute(key, value));
  view.where.textContent = `output row ${row + 1}, column ${col + 1} of ${output}x${output}: the window's top-left ` +
    `is at row ${row * stride + 1}, column ${col * stride + 1} of the padded input`;
  view.sum.textContent = terms.map((line) => line.join(" + ")).join(" +\n") +
    ` = ${round(plan.result[row][col])}`;
}

function step() {
  moveTo((position + 1) % (plan.output * plan.output));
}

function play() {
  if (timer) { pause(); return; }
  if (position === plan.output * plan.output - 1) moveTo(0);
  view.play.textContent = "Pause";
  timer = setInterval(() => {
    step();
    if (position === plan.output * plan.output - 1) pause();
  }, STEP_MS);
}

function pause() {
  clearInterval(timer);
  timer = null;
  view.play.textContent = "Play";
}

function wrapNegative(value) {
  return value < 0 ? `(${value})` : String(value);
}

function round(x) {
  return Number.isInteger(x) ? x : Number(x.toPrecision(4));
}

// --- the conv layer on a picture ----------------------------------------------------------------------------------

const loadLayer = latestOnly(async () => {
  const answer = await api(`convolution/layer?image=${encodeURIComponent(view.picture.value)}` +
    `&stride=${clamp(view.layerStride)}&padding=${clamp(view.layerPadding)}`);
  view.layerInput.src = answer.input;
  view.layerFilters.replaceChildren(...answer.filters.map((filter, i) => el("figure", {},
    grid(filter.length, filter.length, 22, (r, c) => filter[r][c], (r, c) => signClass(filter[r][c])).svg,
    el("figcaption", {}, `filter ${i + 1}`))));
  view.layerFormula.textContent = answer.explanation.join("\n");
  view.stages.replaceChildren(...answer.stages.map((stage) => el("div", { class: "stage" },
    el("div", { class: "stage-title" }, el("b", {}, stage.title), el("br"), `${stage.width}x${stage.height}`,
      el("br"), `black = ${round(stage.black)}`, el("br"), `white = ${round(stage.white)}`,
      stage.black < 0 ? el("span", {}, el("br"), "mid-grey = 0") : ""),
    ...stage.maps.map((src, i) => el("img", { src, alt: `${stage.title}, filter ${i + 1}` })))));
}, TYPING_MS);

async function uploadPicture(file) {
  if (!file) return;
  const answer = await api("pictures", { image: await fileToDataURL(file) });
  view.picture.append(el("option", { value: answer.id }, file.name));
  view.picture.value = answer.id;
  loadLayer();
}

function numberInput(name, value, min, max, oninput) {
  const input = el("input", { type: "number", name, value, min, max, step: 1, oninput,
    onchange: () => { input.value = clamp(input); } });
  return input;
}

function labelled(text, control) {
  return el("label", {}, text, " ", control);
}

function build(section, samples) {
  const v = {};
  for (const [name, value, min, max] of [["size", 7, 1, 16], ["kernel", 3, 1, 7], ["stride", 1, 1, 6],
    ["padding", 0, 0, 6], ["dilation", 1, 1, 4]]) {
    v[name] = numberInput(name, value, min, max, loadSizes);
  }
  v.play = el("button", { class: "action", onclick: play }, "Play");
  v.step = el("button", { class: "action", onclick: () => { pause(); step(); } }, "Step");
  v.reset = el("button", { class: "action", onclick: () => { pause(); moveTo(0); } }, "Reset");
  const shuffle = el("button", { class: "action", onclick: () => { seed += 1; loadSizes(); } },
    "New numbers");
  for (const name of ["input", "weights", "output"]) {
    v[name] = el("div");
    v[name + "Caption"] = el("figcaption");
  }
  v.where = el("p", { class: "where" });
  v.sum = el("pre", { class: "multiply-add" });
  v.formula = el("pre", { class: "formula" });
  v.explanation = el("div", { class: "explanation" });

  v.picture = el("select", { onchange: loadLayer },
    ...samples.map((s) => el("option", { value: s.id, title: s.description }, s.name)));
  v.file = el("input", { type: "file", accept: "image/*", onchange: () => uploadPicture(v.file.files[0]) });
  v.layerStride = numberInput("layer-stride", 1, 1, 8, loadLayer);
  v.layerPadding = numberInput("layer-padding", 0, 0, 8, loadLayer);
  v.layerInput = el("img", { class: "layer-input", alt: "input" });
  v.layerFilters = el("div", { class: "filters" });
  v.layerFormula = el("pre", { class: "formula" });
  v.stages = el("div", { class: "stages" });

  section.append(
    el("div", { class: "card arithmetic" },
      el("h2", {}, "The sliding window"),
      el("div", { class: "row controls" }, ...["size", "kernel", "stride", "padding", "dilation"]
        .map((name) => labelled(name === "size" ? "input size" : name, v[name])), shuffle),
      el("div", { class: "row grids" },
        el("figure", {}, v.input, v.inputCaption), el("figure", {}, v.weights, v.weightsCaption),
        el("figure", {}, v.output, v.outputCaption),
        el("div", { class: "sizes" }, el("div", { class: "row buttons" }, v.play, v.step, v.reset),
          v.where, v.sum, v.formula, v.explanation))),
    el("div", { class: "card layer" },
      el("h2", {}, "A conv layer on a picture: the lesson's four filters, ReLU, 2x2 max-pool"),
      el("div", { class: "row controls" }, labelled("picture", v.picture), labelled("or upload", v.file),
        labelled("stride", v.layerStride), labelled("padding", v.layerPadding)),
      el("div", { class: "row" }, el("figure", {}, v.layerInput, el("figcaption", {}, "input, grey 0..1")),
        v.layerFilters, v.layerFormula),
      v.stages));
  return v;
}
