// Convolution arithmetic: the window sliding over the padded input one position at a time, its multiply-add
// written out and the output filling in. The sizes and their explanation come from the server (one formula, in
// cnnlab.filters), and so do the output numbers (PyTorch's convolution); only the stepping happens here.
// Below it, the lesson's conv layer on a picture: four filters, then ReLU, then 2x2 max-pooling; and one output
// channel of the user's own trained first layer, as the sum of its kernels over every input channel plus the bias.
import { api, latest, latestOnly, STALE } from "./api.js";
import { colourLegend, el, fileToDataURL, labelled, round, svg } from "./dom.js";
import { intro, prose } from "./glossary.js";

const STEP_MS = 700;     // one window position per step while playing
const TYPING_MS = 150;  // a size is sent once the typing pauses, so "12" is not first drawn as 1

let plan = null;        // the server's answer for the current sizes
let grids = null;       // the drawn input / kernel / output cells
let position = 0;       // the output cell the window is on: row * output + column
let timer = null;       // set while playing
let seed = 0;           // picks the example numbers; "New numbers" counts it up
let view;

const INTRO = [
  "A conv layer slides a {kernel} over its input: at each place it multiplies the pixels under the window by the " +
  "kernel's weights and adds them up. Press Play to watch the window move and the output fill in, one multiply-add " +
  "at a time.",
  "Try: {stride} 2 to halve the output; {padding} 1 to keep a 3x3 kernel's output as large as its input; " +
  "{dilation} 2 to spread the kernel out and widen its {receptive-field|receptive field}. Below, a real layer: the " +
  "lesson's four filters with {relu} and {pooling}, and one channel of your own trained first layer, taken apart " +
  "input {channel} by input channel.",
];

export async function init(section) {
  const [{ samples }, runs] = await Promise.all([api("kernels"), api("explore/runs")]);
  view = build(section, samples, runs.filter((run) => !run.problem));
  await Promise.all([loadSizes(), loadLayer(), firstConvRun()]);
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

// When the window does not fit, nothing of the previous sizes stays: no formula with a size of -1, no sum.
const loadSizes = latestOnly(async () => {
  plan = await api("convolution/sizes?" + sizeQuery());
  pause();
  view.formula.textContent = plan.fits ? plan.formula.join("\n")
    : `The ${plan.span}x${plan.span} window does not fit in the ${plan.size + 2 * plan.padding}x` +
      `${plan.size + 2 * plan.padding} padded input: (W - F + 2P) / S + 1 would be below 1, so there is no output.`;
  view.explanation.replaceChildren(...plan.explanation.map((line) => el("p", {}, line)));
  view.outputCaption.textContent = plan.fits ? `output ${plan.output}x${plan.output}` : "no output: the window " +
    "does not fit";
  drawGrids();
  for (const button of [view.play, view.step, view.reset]) button.disabled = !plan.fits;
  if (plan.fits) moveTo(0);
  else {
    view.where.textContent = "";
    view.sum.textContent = "The window does not fit: nothing to compute.";
  }
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
  const never = neverTapped(padded);
  input.cells.flat().forEach(({ rect }, i) => {
    if (never.has(i)) rect.classList.add("never");
  });
  input.svg.append(svg("rect", { class: "window", rx: 3 }));
  grids = { input, weights, result, cell };
  view.input.replaceChildren(input.svg);
  view.weights.replaceChildren(weights.svg);
  view.output.replaceChildren(result.svg);
  view.inputCaption.textContent = `input ${size}x${size}` + (padding ? `, padded by ${padding} (zeros, dashed)` : "");
  view.weightsCaption.textContent = `kernel ${kernel}x${kernel}` +
    (plan.dilation > 1 ? `, dilation ${plan.dilation}: spans ${plan.span}x${plan.span}` : "");
  view.neverCaption.hidden = !never.size;
}

// The padded input's cells (row * side + column) that no window position multiplies: skipped between windows when
// the stride is longer than the window, between a dilated kernel's taps, or left over at the end.
function neverTapped(side) {
  const { output, stride, dilation, kernel } = plan;
  const hit = new Set();
  for (let r = 0; r < output; r++) {
    for (let i = 0; i < kernel; i++) hit.add(r * stride + i * dilation);
  }
  const never = new Set();
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) if (!hit.has(r) || !hit.has(c)) never.add(r * side + c);
  }
  return never;
}

// A rows x cols grid of numbered squares; cells[r][c] = {rect, text}.
function grid(rows, cols, cell, value, className) {
  const picture = svg("svg", { width: cols * cell + 2, height: rows * cell + 2, class: "grid" });
  const cells = [];
  for (let r = 0; r < rows; r++) {
    cells.push([]);
    for (let c = 0; c < cols; c++) {
      const rect = svg("rect", { x: c * cell + 1, y: r * cell + 1, width: cell, height: cell,
        class: className(r, c), "data-row": r, "data-col": c });
      const text = svg("text", { x: (c + 0.5) * cell + 1, y: (r + 0.5) * cell + 1,
        "font-size": Math.round(cell * 0.45) });
      text.textContent = value(r, c);
      picture.append(rect, text);
      cells[r].push({ rect, text });
    }
  }
  return { svg: picture, cells };
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

function build(section, samples, runs) {
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
  v.neverCaption = el("figcaption", { class: "never-note", hidden: "" }, "hatched: never under a tap of the " +
    "kernel (skipped between windows or taps, or left over at the end)");
  const multi = buildFirstConv(v, runs);

  section.append(
    intro(INTRO, ["06-conv-layer", "04-mlp-vs-cnn"]),
    el("div", { class: "card arithmetic" },
      el("h2", {}, "The sliding window"),
      el("div", { class: "row controls" }, ...["size", "kernel", "stride", "padding", "dilation"]
        .map((name) => labelled(name === "size" ? "input size" : name, v[name])), shuffle),
      el("div", { class: "row grids" },
        el("figure", {}, v.input, v.inputCaption, v.neverCaption), el("figure", {}, v.weights, v.weightsCaption),
        el("figure", {}, v.output, v.outputCaption),
        el("div", { class: "sizes" }, el("div", { class: "row buttons" }, v.play, v.step, v.reset),
          v.where, v.sum, v.formula, v.explanation))),
    el("div", { class: "card layer" },
      el("h2", {}, "A conv layer on a picture: the lesson's four filters, ReLU, 2x2 max-pool"),
      el("div", { class: "row controls" }, labelled("picture", v.picture), labelled("or upload", v.file),
        labelled("stride", v.layerStride), labelled("padding", v.layerPadding)),
      el("div", { class: "row" }, el("figure", {}, v.layerInput, el("figcaption", {}, "input, grey 0..1")),
        v.layerFilters, v.layerFormula),
      v.stages),
    multi);
  return v;
}

// --- one channel of the user's own first conv layer, input channel by input channel --------------------------------

const INPUT_NAMES = { 1: ["grey"], 3: ["red", "green", "blue"] };
const SIGNED = ["#000", "#808080", "#fff"];
let firstConv = null;      // the server's answer for the run, image and channel shown
let testImage = null;      // the test image taken apart (a data URL)
const firstConvAsked = latest();

function buildFirstConv(v, runs) {
  v.convRun = el("select", { "aria-label": "run", onchange: () => firstConvRun() },
    ...runs.map((run) => el("option", { value: run.name }, `${run.name} (${run.model})`)));
  v.convChannel = numberInput("conv-channel", 0, 0, 511, () => loadFirstConv());
  v.convRows = el("div", { class: "channel-rows" });
  v.convSum = el("pre", { class: "multiply-add channel-sum" });
  v.convError = el("p", { class: "panel-error", role: "alert", hidden: "" });
  v.convCaption = el("p", { class: "note" });
  const another = el("button", { class: "action", onclick: () => firstConvRun() }, "Another test image");
  return el("div", { class: "card first-conv" },
    el("h2", {}, "Many input channels: one output channel of your trained first layer"),
    el("p", { class: "note" }, ...prose("An output {channel} of a conv layer is not one kernel on one picture: it " +
      "has one {kernel} for every input channel. Each input channel is filtered with its own kernel (a partial " +
      "map); the partial maps are added up and the {bias} is added. Here with your run's own trained numbers, on " +
      "a test image of its data set. Click a map to see the sum at that pixel.")),
    el("div", { class: "row controls" }, labelled("run", v.convRun), labelled("output channel", v.convChannel),
      another),
    v.convError, v.convCaption, v.convRows, v.convSum,
    colourLegend(SIGNED, ["−largest", "0", "+largest"], "each map on its own scale: mid-grey = 0"));
}

async function firstConvRun() {
  const run = view.convRun.value;
  if (!run) {
    view.convCaption.textContent = "No trained run here: train a CNN (cnnlab train mnist-cnn) to see its first layer.";
    return;
  }
  try {
    testImage = (await api(`explore/random?run=${encodeURIComponent(run)}`, undefined, { quiet: true })).image;
  } catch (error) {
    return convFailed(error);
  }
  await loadFirstConv();
}

async function loadFirstConv() {
  const question = { run: view.convRun.value, image: testImage, channel: clamp(view.convChannel) };
  let answer;
  try {
    answer = await firstConvAsked(() => api("explore/first-conv", question, { quiet: true }));
  } catch (error) {
    return convFailed(error);
  }
  if (answer === STALE) return;
  view.convError.hidden = true;
  firstConv = answer;
  view.convChannel.max = answer.channels - 1;
  const [k] = [answer.kernels[0].length];
  view.convCaption.textContent = `${answer.layer}: ${answer.kernels.length} input channels → ${answer.channels} ` +
    `output channels, ${k}x${k} kernels, stride ${answer.stride[0]}, padding ${answer.padding[0]}; output channel ` +
    `${answer.channel} has ${answer.kernels.length} kernels (${answer.kernels.length * k * k} weights) and a bias.`;
  const names = INPUT_NAMES[answer.kernels.length] ?? answer.kernels.map((_, c) => `channel ${c}`);
  const picture = (src, alt) => el("img", { src, alt, class: "map", onclick: (event) => pickPixel(event) });
  view.convRows.replaceChildren(...answer.kernels.map((kernel, c) => el("div", { class: "channel-row" },
    el("figure", {}, picture(answer.inputs[c], `input ${names[c]}`), el("figcaption", {}, `input: ${names[c]}`)),
    el("span", { class: "op" }, "⊛"),
    el("figure", {}, grid(k, k, 40, (r, col) => kernel[r][col].toFixed(2), (r, col) => signClass(kernel[r][col])).svg,
      el("figcaption", {}, "its kernel (green +, red −)")),
    el("span", { class: "op" }, "="),
    el("figure", {}, picture(answer.partial_pictures[c], `partial map ${names[c]}`),
      el("figcaption", {}, `partial map ${c + 1}`)),
    c === answer.kernels.length - 1
      ? el("div", { class: "total" }, el("span", { class: "op" }, `+ bias ${round(answer.bias)} =`),
        el("figure", {}, picture(answer.output_picture, "output channel"),
          el("figcaption", {}, `output channel ${answer.channel}`)))
      : el("span", { class: "op" }, "+"))));
  const [h, w] = [answer.output.length, answer.output[0].length];
  showPixel(Math.floor(h / 2), Math.floor(w / 2));
}

function convFailed(error) {
  view.convError.textContent = error.message;
  view.convError.hidden = false;
  view.convRows.replaceChildren();
  view.convSum.textContent = "";
  view.convCaption.textContent = "";
}

function pickPixel(event) {
  const box = event.target.getBoundingClientRect();
  const [h, w] = [firstConv.output.length, firstConv.output[0].length];
  const scale = box.width / event.target.naturalWidth;
  const [row, column] = [(event.clientY - box.top) / scale, (event.clientX - box.left) / scale].map(Math.floor);
  showPixel(Math.min(h - 1, row), Math.min(w - 1, column));
}

// The sum at one output pixel: each input channel's partial value, the bias, their total, and the layer's own value.
function showPixel(row, column) {
  const parts = firstConv.partials.map((partial) => partial[row][column]);
  const total = parts.reduce((a, b) => a + b, 0) + firstConv.bias;
  const names = INPUT_NAMES[parts.length] ?? parts.map((_, c) => `channel ${c}`);
  view.convSum.dataset.row = row;
  view.convSum.dataset.column = column;
  view.convSum.textContent = `at row ${row}, column ${column}:\n` +
    parts.map((value, c) => `${wrapNegative(round(value))} (${names[c]})`).join(" + ") +
    ` + ${wrapNegative(round(firstConv.bias))} (bias)\n= ${round(total)}` +
    `   (the layer's own output there: ${round(firstConv.output[row][column])})`;
}
