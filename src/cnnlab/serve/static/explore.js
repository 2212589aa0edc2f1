// The "Look inside" panel: pick a trained run, give it an image (draw it, upload or drop it, film it, or take a
// random test image) and see what the network makes of it: the class probabilities, what the model's input looks
// like, every layer's feature maps (all from one forward pass, redrawn while you draw) and, for a clicked class,
// where in the image the evidence for it is (Grad-CAM, saliency or occlusion).
import { api, latest, STALE } from "./api.js";
import { colourLegend, el, fileToDataURL, webcamFrame } from "./dom.js";
import { intro, LAYER_TERMS, prose, term } from "./glossary.js";
import { AttackPanel } from "./attack.js";

const BRUSH = 22;          // px on the 280x280 canvas: strokes as thick as MNIST's once scaled into a 20x20 box
const MAX_BARS = 20;       // classes shown as bars; a model with more shows its most likely ones
const [THUMB, GAP, PER_ROW] = [34, 4, 20];      // a channel thumbnail's height and gap in px; at most 20 a row

const state = {
  runs: [], run: null,     // the runs on offer and the chosen one (as api/explore/runs describes it)
  source: null,            // "drawing" | "picture" | "test": where the shown input came from
  input: null,             // {image, drawing}: the last input the model answered for
  picture: null,           // the last uploaded or filmed picture (a data URL), kept when the run changes
  target: null,            // the class whose evidence is shown, once a bar was clicked
  layers: [],              // the last answer's layers, drawn again when another channel is picked
  picked: null,            // {layer, channel} enlarged, and enlarged again in each new answer
};
let methods = {};          // the attribution methods the server offers, by name (api/explore/methods)
let view;

const INTRO = [
  "Pick a trained run and give it an image: draw one, upload or drop one, film one, or take a test image. The " +
  "bars are the model's {softmax} probabilities, made from its {logit|logits} (its raw class scores).",
  "Click a bar to see where in the image the evidence for that class is ({gradcam}, {saliency} or {occlusion}). " +
  "Below, every layer's output for this image: each conv {channel} as a small {feature-map|feature map}, after " +
  "{relu}, {batchnorm} or {pooling} too. Try: draw a 7 slowly and watch the bars change; click the first layer's " +
  "channels to see which edges each one picks up.",
];

export async function init(section) {
  view = build(section);
  const [runs, offered] = await Promise.all([api("explore/runs"), api("explore/methods")]);
  methods = Object.fromEntries(offered.map((method) => [method.name, method]));
  view.method.replaceChildren(...offered.map((m) => el("option", { value: m.name }, m.label)));
  state.runs = runs;
  view.runs.replaceChildren(...state.runs.map(runOption));
  if (!state.runs.length) {
    view.info.textContent = "No runs here yet: train one (cnnlab train mlp) into the folder the server shows.";
    return;
  }
  const first = state.runs.find((run) => !run.problem);
  if (first) {
    view.runs.value = first.name;
    await chooseRun(first.name);
  }
}

// --- the page's parts ---------------------------------------------------------------------------------------

function build(section) {
  const v = {};
  v.runs = el("select", { class: "runs", "aria-label": "run", onchange: () => chooseRun(v.runs.value) });
  v.info = el("p", { class: "info" });
  v.canvas = el("canvas", { class: "drawing", width: 280, height: 280, "aria-label": "drawing canvas" });
  v.preview = el("img", { class: "preview", alt: "the input picture" });
  v.truth = el("p", { class: "truth" });
  v.stage = el("div", { class: "stage" }, v.canvas, v.preview);
  v.file = el("input", { type: "file", accept: "image/*", class: "file", onchange: () => uploaded(v.file.files[0]) });
  v.clear = el("button", { class: "action", onclick: clearDrawing }, "Clear");
  v.draw = el("button", { class: "action", onclick: startDrawing }, "Draw");
  const buttons = el("div", { class: "row sources" }, v.draw, v.clear,
    el("label", { class: "action upload" }, "Upload…", v.file),
    el("button", { class: "action", onclick: filmed }, "Webcam"),
    el("button", { class: "action random", title: "a random test image of the run's data set, with its true label",
      onclick: () => randomTestImage() }, "Test image"));
  v.hint = el("p", { class: "hint" });
  v.sourceError = el("p", { class: "panel-error", role: "alert", hidden: "" });
  const source = el("div", { class: "card source" }, el("h2", {}, "Run and input"), v.runs, v.info, v.stage, v.truth,
    buttons, v.sourceError, v.hint);

  v.predicted = el("p", { class: "predicted" });
  v.seen = el("img", { class: "seen", alt: "the input as the model sees it" });
  v.seenCaption = el("p", { class: "caption" });
  v.notes = el("ul", { class: "notes" });
  v.bars = el("div", { class: "bars" });
  v.smoothing = el("p", { class: "caption smoothing", hidden: "" });
  const result = el("div", { class: "card result" }, el("h2", {}, "What the model says"), v.predicted,
    el("div", { class: "seen-box" }, v.seen, el("div", {}, v.seenCaption, v.notes)), v.bars, v.smoothing);

  v.method = el("select", { class: "method", "aria-label": "attribution method", onchange: showEvidence });
  v.overlay = el("img", { class: "overlay", alt: "heat map over the input" });
  v.overlayCaption = el("p", { class: "caption" }, "Click a class bar to see which pixels count for that class.");
  v.methodNote = el("p", { class: "method-note" });
  v.legend = el("div", { class: "legend" });
  const evidence = el("div", { class: "card evidence" }, el("h2", {}, "Where is the evidence?"),
    el("label", {}, "method ", v.method), v.methodNote, v.overlay, v.legend, v.overlayCaption);

  v.layers = el("div", { class: "layer-rows" });
  v.zoom = el("canvas", { class: "zoom map", width: 224, height: 224 });
  v.zoomCaption = el("p", { class: "caption" }, "Click a channel to enlarge it.");
  v.zoomBox = el("div", { class: "zoom-box" }, v.zoom, v.zoomCaption);
  const layers = el("div", { class: "card layers" }, el("h2", {}, "Every layer, from one forward pass"),
    el("p", { class: "caption" }, "Each row is a layer's output for this image: one thumbnail per channel (bright = " +
      "strong, each scaled to its own range), a linear layer's outputs as bars."),
    el("div", { class: "layers-body" }, v.layers, v.zoomBox));

  v.attack = new AttackPanel(() => ({ run: state.run, input: state.input }), layerRow);   // attack.js
  section.append(intro(INTRO, ["02-mlp", "10-visualizing"]),
    el("div", { class: "explore-grid" }, source, result, evidence, v.attack.card), layers);
  wireDrawing(v.canvas);
  wireDrop(v.stage);
  return v;
}

function runOption(run) {
  const accuracy = run.test_accuracy == null ? "not tested" : `${(100 * run.test_accuracy).toFixed(1)}%`;
  const text = run.problem ? `${run.name} (${run.model ? "needs its code: --trust" : "cannot be read"})`
    : `${run.name} (${accuracy})`;
  return el("option", run.problem ? { value: run.name, disabled: "", title: run.problem } : { value: run.name },
    text);
}

async function chooseRun(name) {
  state.run = state.runs.find((run) => run.name === name);
  const run = state.run;
  const accuracy = run.test_accuracy == null ? "not tested yet"
    : `test accuracy ${(100 * run.test_accuracy).toFixed(2)}%`;
  view.info.replaceChildren(el("b", {}, run.model), ` on ${run.dataset} · ${accuracy} · input ` +
    `${run.input_shape.join("×")} · ${run.classes.length} classes` + (run.code ? ` · ${run.code}` : ""));
  state.target = null;
  state.picked = null;
  clearResults("");
  if (run.drawable && state.source !== "picture") return startDrawing();
  if (state.source === "picture") return sendPicture(state.picture);
  return randomTestImage();
}

// Why a run trained with label smoothing looks less sure than one without: its targets were never 1.
function showSmoothing({ label_smoothing: epsilon, classes }) {
  view.smoothing.hidden = !epsilon;
  if (!epsilon) return;
  const top = 1 - epsilon + epsilon / classes.length;
  view.smoothing.replaceChildren(...prose(`This run was trained with {label-smoothing|label smoothing} ${epsilon}: ` +
    `its target for the right class was ${top.toFixed(3)}, not 1, so even a sure answer reads near ` +
    `${top.toFixed(2)}. It looks less sure than a model trained without it (the MLP, say), not because it is ` +
    "worse: label smoothing caps confidence."));
}

// --- inputs -------------------------------------------------------------------------------------------------

function showSource(source) {
  state.source = source;
  const drawing = source === "drawing";
  view.canvas.hidden = !drawing;
  view.preview.hidden = drawing;
  view.clear.hidden = !drawing;
  view.draw.hidden = drawing || !state.run.drawable;
  view.truth.hidden = source !== "test";
  view.hint.textContent = drawing
    ? "Draw a digit with the mouse, a pen or a finger: the prediction follows as you draw. Or drop an image here."
    : "Drop an image here, or choose one of the inputs above.";
}

function startDrawing() {
  showSource("drawing");
  clearDrawing();
}

function clearDrawing() {
  const context = view.canvas.getContext("2d");
  context.fillStyle = "#000";              // opaque black: the model takes white strokes on black
  context.fillRect(0, 0, view.canvas.width, view.canvas.height);
  state.input = null;
  clearResults("Draw a digit on the canvas.");
}

function drawingInput() {
  return { image: view.canvas.toDataURL("image/png"), drawing: true };
}

function wireDrawing(canvas) {
  let last = null;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
      (event.clientY - box.top) * canvas.height / box.height];
  };
  const stroke = (from, to) => {
    const context = canvas.getContext("2d");
    Object.assign(context, { strokeStyle: "#fff", lineWidth: BRUSH, lineCap: "round", lineJoin: "round" });
    context.beginPath();
    context.moveTo(...from);
    context.lineTo(...to);
    context.stroke();
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = at(event);
    stroke(last, last);
    predict(drawingInput);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!last) return;
    const point = at(event);
    stroke(last, point);
    last = point;
    predict(drawingInput);
  });
  const end = () => {
    if (!last) return;
    last = null;
    predict(drawingInput, showEvidence);     // the heat map, if one is shown, follows once the stroke is done
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function wireDrop(stage) {
  stage.addEventListener("dragover", (event) => { event.preventDefault(); stage.classList.add("over"); });
  stage.addEventListener("dragleave", () => stage.classList.remove("over"));
  stage.addEventListener("drop", (event) => {
    event.preventDefault();
    stage.classList.remove("over");
    uploaded(event.dataTransfer.files[0]);
  });
}

async function uploaded(file) {
  if (!file) return;
  view.file.value = "";                      // the same file chosen again is a change too
  sendPicture(await fileToDataURL(file));
}

async function filmed() {
  const frame = await webcamFrame();
  if (frame) sendPicture(frame);
}

function sendPicture(image) {
  showSource("picture");
  state.picture = image;
  view.preview.src = image;
  clearResults("");                          // the previous image's answer must not stay beside this picture
  predict(() => ({ image, drawing: false }), showEvidence);
}

async function randomTestImage() {
  const test = await api(`explore/random?run=${encodeURIComponent(state.run.name)}`, undefined, { quiet: true })
    .catch((error) => { inputFailed(error); return null; });
  if (!test) return;
  showSource("test");
  view.preview.src = test.image;
  view.truth.replaceChildren("true label: ", el("b", {}, test.label_name),
    ` · test image #${test.index} of ${test.count}`);
  predict(() => ({ image: test.image, drawing: false }), showEvidence);
}

// --- asking the model ---------------------------------------------------------------------------------------

// At most one request in flight. An input given meanwhile replaces the one waiting (so while drawing the requests
// never pile up) and is read only when it is sent: the canvas as it is then, the latest drawing.
let busy = false;
let waiting = null;
const looked = latest();   // an answer to an input asked before the last clearing is not shown

function predict(input, then) {
  waiting = { input, then };
  if (!busy) sendWaiting();
}

async function sendWaiting() {
  busy = true;
  while (waiting) {
    const { input, then } = waiting;
    waiting = null;
    const run = state.run.name;
    const given = input();
    try {
      const answer = await looked(() => api("explore/look", { run, ...given }, { quiet: true }));
      if (answer === STALE) continue;        // cleared, or another run chosen, meanwhile
      view.sourceError.hidden = true;
      state.input = given;
      showAnswer(answer);
      if (then && !waiting) then();
    } catch (error) {
      if (!waiting) inputFailed(error);
    }
  }
  busy = false;
}

// The input could not be read (or the run answered with an error): said where the input is, and nothing of an
// earlier input left on screen as if it were this one's answer.
function inputFailed(error) {
  clearResults("No prediction: the input was refused (see under the picture).");
  view.preview.removeAttribute("src");
  view.sourceError.textContent = error.message;
  view.sourceError.hidden = false;
}

function clearResults(message) {
  looked.drop();
  waiting = null;                            // nor is an input still waiting sent
  view.predicted.textContent = message;
  view.seen.removeAttribute("src");
  view.seenCaption.textContent = "";
  view.notes.replaceChildren();
  view.bars.replaceChildren();
  view.smoothing.hidden = true;
  view.layers.replaceChildren();
  view.zoom.getContext("2d").clearRect(0, 0, view.zoom.width, view.zoom.height);
  view.zoomCaption.textContent = "Click a channel to enlarge it.";
  view.sourceError.hidden = true;
  clearEvidence();
}

function showAnswer(answer) {
  const { classes, scores, predicted, score_name: scoreName } = answer;
  view.predicted.replaceChildren("Predicted: ", el("b", { class: "class" }, classes[predicted]),
    ` · ${scoreName} ${scores[predicted].toFixed(3)}`);
  view.seen.src = answer.input;
  view.seenCaption.textContent = `the model's input (${state.run.input_shape.join("×")})`;
  view.notes.replaceChildren(...answer.notes.map((note) => el("li", {}, note)));
  showBars(classes, scores, predicted);
  showSmoothing(answer);
  for (const option of view.method.options) option.disabled = !answer.methods.includes(option.value);
  if (view.method.selectedOptions[0].disabled) view.method.value = answer.methods[0];
  state.layers = answer.layers;
  view.layers.replaceChildren(...answer.layers.map(layerRow));
  view.zoomBox.hidden = !answer.layers.some((layer) => layer.maps);     // an MLP has no channels to enlarge
  view.attack.update();
}

function showBars(classes, scores, predicted) {
  const order = classes.map((_, k) => k);
  const shown = classes.length > MAX_BARS ? order.sort((a, b) => scores[b] - scores[a]).slice(0, MAX_BARS) : order;
  const bars = shown.map((k) => {
    const width = `width: ${(100 * Math.min(1, scores[k])).toFixed(1)}%`;
    return el("button", {
      class: "bar" + (k === predicted ? " top" : "") + (k === state.target ? " chosen" : ""), "data-class": k,
      title: `show where the evidence for ${classes[k]} is`, onclick: () => chooseClass(k),
    }, el("span", { class: "name" }, classes[k]),
    el("span", { class: "track" }, el("span", { class: "fill", style: width })),
    el("span", { class: "value" }, scores[k].toFixed(3)));
  });
  if (shown.length < classes.length) {
    bars.push(el("p", { class: "caption" }, `the ${MAX_BARS} most likely of ${classes.length} classes`));
  }
  view.bars.replaceChildren(...bars);
}

function chooseClass(k) {
  state.target = k;
  markChosen();
  showEvidence();
}

function markChosen() {
  for (const bar of view.bars.querySelectorAll(".bar")) {
    bar.classList.toggle("chosen", Number(bar.dataset.class) === state.target);
  }
}

// --- layers -------------------------------------------------------------------------------------------------

function layerRow(layer) {
  const [channels] = layer.shape;
  const notes = [];
  if (layer.maps && layer.shown < channels) notes.push(`first ${layer.shown} of ${channels} channels shown`);
  if (layer.scaled) notes.push("averaged down to fit");
  const kind = layer.kind in LAYER_TERMS ? term(LAYER_TERMS[layer.kind], layer.kind) : layer.kind;
  const label = el("div", { class: "layer-label" }, el("b", {}, layer.name),
    el("span", {}, kind, ` · ${layer.shape.join("×")}`), ...notes.map((note) => el("em", {}, note)));
  return el("div", { class: "layer" }, label, layer.maps ? thumbnails(layer) : vectorBars(layer.values));
}

// All channels of a layer on one canvas, a grid of thumbnails: the browser paints hundreds of small canvases
// slowly (app.js's mapCanvases, one per channel: 0.3-0.9 s per update for mnist-cnn in headless Chromium here).
function thumbnails(layer) {
  const [channels, h, w] = layer.maps.shape;
  const stack = channelStack(layer.maps);
  const rows = Math.ceil(channels / PER_ROW);
  const grid = { columns: Math.ceil(channels / rows), width: Math.round(THUMB * Math.min(w / h, 3)) + GAP,
    height: THUMB + GAP };
  const sheet = el("canvas", { class: "sheet", width: grid.columns * grid.width, height: rows * grid.height,
    title: `${layer.name}: click a channel to enlarge it`, "data-columns": grid.columns,
    "data-cell-width": grid.width, "data-cell-height": grid.height });
  const picked = state.picked?.layer === layer.name ? state.picked.channel : null;
  const context = sheet.getContext("2d");
  context.imageSmoothingEnabled = false;     // each pixel of a map as a square: smoothing would invent detail
  for (let c = 0; c < channels; c++) {
    const [x, y] = [(c % grid.columns) * grid.width + GAP / 2, Math.floor(c / grid.columns) * grid.height + GAP / 2];
    context.drawImage(stack, 0, c * h, w, h, x, y, grid.width - GAP, THUMB);
    const [colour, line] = c === picked ? ["#2f6fdb", 2] : ["#d9dee6", 1];      // a frame; the picked one in blue
    Object.assign(context, { strokeStyle: colour, lineWidth: line });
    context.strokeRect(x - line / 2, y - line / 2, grid.width - GAP + line, THUMB + line);
  }
  sheet.addEventListener("click", (event) => {
    const scale = sheet.width / sheet.clientWidth;           // 1 unless a narrow window shrank the sheet
    const column = Math.floor(event.offsetX * scale / grid.width);
    const channel = Math.floor(event.offsetY * scale / grid.height) * grid.columns + column;
    if (channel < channels) pick(layer, channel);
  });
  if (picked !== null && picked < channels) enlarge(stack, layer, picked);
  return sheet;
}

// Grey uint8 bytes [C, h, w] (a channel_maps payload) -> one canvas of the channels stacked, C*h high.
function channelStack({ shape: [channels, h, w], data }) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const stack = el("canvas", { width: w, height: channels * h });
  const context = stack.getContext("2d");
  const image = context.createImageData(w, channels * h);
  for (let i = 0; i < bytes.length; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = bytes[i];
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return stack;
}

function pick(layer, channel) {
  state.picked = { layer: layer.name, channel };
  view.layers.replaceChildren(...state.layers.map(layerRow));     // moves the outline, enlarges the channel
}

function enlarge(stack, layer, channel) {
  const [, h, w] = layer.maps.shape;
  const context = view.zoom.getContext("2d");
  context.imageSmoothingEnabled = false;
  const scale = Math.min(view.zoom.width / w, view.zoom.height / h);
  context.clearRect(0, 0, view.zoom.width, view.zoom.height);
  context.drawImage(stack, 0, channel * h, w, h, (view.zoom.width - w * scale) / 2, (view.zoom.height - h * scale) / 2,
    w * scale, h * scale);
  const [, mh, mw] = layer.shape;
  view.zoomCaption.replaceChildren(el("b", {}, layer.name), ` channel ${channel} of ${layer.shape[0]} · ${mh}×${mw}` +
    (layer.scaled ? ` (shown ${h}×${w})` : ""));
}

// A linear layer's outputs: one thin bar each, up for positive, down for negative, on one scale per layer.
function vectorBars(values) {
  const width = Math.min(values.length * (values.length <= 64 ? 12 : 2), 1024);   // a few outputs get wide bars
  const canvas = el("canvas", { class: "vector", width, height: 40 });
  const context = canvas.getContext("2d");
  const top = Math.max(...values.map(Math.abs)) || 1;
  const zero = values.some((v) => v < 0) ? 20 : 39;        // the baseline: mid-height when some are negative
  const reach = zero === 20 ? 19 : 38;
  const step = width / values.length;
  const barWidth = Math.max(step > 2 ? step - 1 : step, 1);  // a gap between bars where there is room for one
  context.fillStyle = "#2f6fdb";
  values.forEach((value, k) => {
    const height = (value / top) * reach;
    context.fillRect(k * step, zero - Math.max(height, 0), barWidth, Math.abs(height) || 0.5);
  });
  canvas.title = `${values.length} outputs, largest |value| ${top.toPrecision(3)}`;
  return canvas;
}

// --- evidence for a class -----------------------------------------------------------------------------------

const evidence = latest();  // only the answer to the latest question is shown

function clearEvidence() {
  evidence.drop();
  view.overlay.removeAttribute("src");
  view.overlayCaption.textContent = "Click a class bar to see which pixels count for that class.";
  view.legend.replaceChildren();
  markChosen();
}

async function showEvidence() {
  const method = methods[view.method.value];
  const what = method.description.replace(new RegExp(`^${method.label}: `, "i"), "");     // "Grad-CAM: ..."
  view.methodNote.replaceChildren(...prose(`{${method.name}|${method.label}} shows: ${what}`));
  if (state.target === null || !state.input) return;
  view.overlayCaption.textContent = `computing ${method.label} for ${state.run.classes[state.target]}…`;
  try {
    const question = { run: state.run.name, ...state.input, target: state.target, method: method.name };
    const answer = await evidence(() => api("explore/attribution", question));
    if (answer === STALE) return;
    view.overlay.src = answer.overlay;
    view.legend.replaceChildren(legendOf(answer));
    view.overlayCaption.replaceChildren("for ", el("b", { class: "target" }, answer.class),
      ` · ${answer.description}. ${whereText(answer)}`);
  } catch { /* api() has shown the error */ }
}

// The overlay's colours, as `cnnlab explain` draws them: inferno for a map of strengths, red-white-blue for a signed
// one; the stronger, the less of the image shows through.
function legendOf({ signed, range: [low, high] }) {
  const top = Math.max(Math.abs(low), Math.abs(high)).toPrecision(2);
  if (signed) {
    return colourLegend(["#053061", "#4393c3", "#f7f7f7", "#d6604d", "#67001f"],
      [`−${top} against`, "0", `+${top} for`], "blue = evidence against the class, red = for it");
  }
  return colourLegend(["#000004", "#57106e", "#bc3754", "#f98e09", "#fcffa4"], ["0: none", `${top}: strongest`],
    "dark = no evidence, bright = strong evidence for the class");
}

function whereText(answer) {
  if (answer.empty) return "Zero everywhere: no channel of the layer holds positive evidence for this class.";
  if (!answer.signed) return `Strongest at row ${answer.strongest[0]}, column ${answer.strongest[1]}.`;
  const at = (point, what) => (point ? `${what} at row ${point[0]}, column ${point[1]}` : `nothing ${what}`);
  return `Red speaks for the class, blue against it: ${at(answer.strongest_for, "most for it")}; ` +
    `${at(answer.strongest_against, "most against it")}.`;
}
