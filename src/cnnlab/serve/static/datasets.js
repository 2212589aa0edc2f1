// The data panel: the data sets cnnlab finds (its usual places, and where the runs found theirs), a grid of samples
// per class of the one picked, and the augmentation preview: its controls are made from the operations the library
// lists (api/datasets/augmentations), and the same images are augmented again as a control moves.
import { api, latest, latestOnly, STALE } from "./api.js";
import { el } from "./dom.js";
import { intro } from "./glossary.js";

// How far a slider goes for each kind of value the library names (it says what is valid; this, what is worth
// seeing). PIXELS: up to half the image's side. A kind not here gets a plain number box.
const SLIDERS = { DEGREES: [1, 180, 1], PIXELS: [1, 0.5, 1], FRACTION: [0.01, 0.5, 0.01], MIN_AREA: [0.05, 1, 0.05] };
const START = { flip: true, rotate: true };     // what the preview shows first: the lesson's flip and rotation

let view;
let entries = [];
let picked = null;            // the listed data set shown
let operations = [];          // what an augmentation spec may name, from the library
let presets = {};
let seed = 0;                 // of the samples drawn
let augmentSeed = 0;          // of the augmentations drawn

const INTRO = [
  "The data sets cnnlab finds on this machine (and how to get the others), a grid of samples of each class, and " +
  "what {augmentation} does to them: tick an operation or move its slider and the same images are changed again.",
  "Try: look at the test samples of a class the model gets wrong; turn the rotation up until a 6 reads as a 9, and " +
  "you have found how far augmentation may go. The settings stay as they are when you pick another data set.",
];

export async function init(section) {
  view = build(section);
  const [listed, terms] = await Promise.all([api("datasets"), api("datasets/augmentations")]);
  [entries, operations, presets] = [listed, terms.operations, terms.presets];
  view.list.replaceChildren(...entries.map(entryRow));
  const first = entries.find((e) => e.available);
  if (first) await pick(first.id);
  else view.samples.replaceChildren(el("p", { class: "note" }, "No data set found: see above how to get one."));
}

function build(section) {
  const v = {
    list: el("tbody"),
    title: el("h2", {}, "Samples per class"),
    split: el("select", { onchange: () => showSamples() }, el("option", { value: "train" }, "train"),
      el("option", { value: "test" }, "test")),
    perClass: el("input", { type: "number", min: 1, max: 32, value: 8, onchange: () => showSamples() }),
    samples: el("div", { class: "samples" }),
    controls: el("div", { class: "controls" }),
    spec: el("input", { type: "text", class: "spec", spellcheck: "false", "aria-label": "augmentation spec",
      oninput: () => refreshPreview() }),
    presets: el("span", { class: "presets" }),
    preview: el("img", { class: "preview", alt: "augmentation preview" }),
    describe: el("p", { class: "note" }),
    original: el("span", {}, "original"),
  };
  const again = el("button", { class: "action", onclick: () => { seed += 1; showSamples(); } }, "other samples");
  const redraw = el("button", { class: "action", onclick: () => { augmentSeed += 1; refreshPreview(); } },
    "draw again");
  const head = ["data set", "found", "images", "shape", "classes", "used by"];
  section.append(
    intro(INTRO, ["01-mnist-pixels", "07-cifar-cnn"]),
    el("div", { class: "card" }, el("h2", {}, "Data sets"),
      el("table", { class: "datasets" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), v.list)),
    el("div", { class: "card" }, v.title,
      el("div", { class: "row toolbar" }, el("label", {}, "split ", v.split), el("label", {}, "per class ", v.perClass),
        again), v.samples),
    el("div", { class: "card augment" }, el("h2", {}, "Augmentation preview"),
      el("div", { class: "augment-layout" },
        el("div", { class: "augment-controls" }, v.controls,
          el("label", { class: "spec-label" }, "spec (as cnnlab train --augment)", v.spec),
          el("div", { class: "row" }, v.presets, redraw)),
        el("figure", {}, el("figcaption", { class: "columns" }, v.original, el("span", {}, "augmented copies")),
          v.preview, v.describe))),
  );
  return v;
}

// ---------------------------------------------------------------- the list

function entryRow(entry) {
  const row = el("tr", { "data-id": entry.id, class: entry.available ? "available" : "missing" },
    el("td", { class: "name" }, entry.name));          // the id is opaque: a name and a hash of its root
  if (entry.available) {
    row.append(el("td", { title: entry.source }, el("span", { class: "found" }, "✓ "), entry.source),
      el("td", {}, `${entry.train_size.toLocaleString()} train · ${entry.test_size.toLocaleString()} test`),
      el("td", {}, entry.shape.join("×")), el("td", {}, String(entry.classes.length)),
      el("td", {}, entry.runs.join(", ") || "–"));
    row.addEventListener("click", () => pick(entry.id));
  } else {
    row.append(el("td", { colspan: 5 }, el("span", { class: "not-found" }, "not found here"), " · get it with ",
      el("code", {}, entry.get), el("details", {}, el("summary", {}, "where cnnlab looked"),
        el("pre", {}, entry.reason))));
  }
  return row;
}

async function pick(id) {
  picked = entries.find((e) => e.id === id);
  for (const row of view.list.children) row.classList.toggle("chosen", row.dataset.id === id);
  seed = 0;
  if (view.controls.childElementCount) fitControls(picked.shape);     // the user's settings kept
  else buildControls(picked.shape);
  refreshPreview();
  await showSamples();
}

// ---------------------------------------------------------------- samples per class

const samplesAsked = latest();  // an older samples answer arriving after a newer question is dropped

async function showSamples() {
  const query = new URLSearchParams({ dataset: picked.id, per_class: view.perClass.value, split: view.split.value,
    seed });
  const answer = await samplesAsked(() => api(`datasets/samples?${query}`));
  if (answer === STALE) return;
  const [, height] = answer.shape;
  const side = height <= 48 ? 2 * height : 96;           // small images doubled, pixel for pixel
  view.title.textContent = `Samples per class: ${picked.name}, ${answer.split}`;
  const more = answer.rows.length < answer.classes ? ` (the first ${answer.rows.length} of ${answer.classes})` : "";
  view.samples.replaceChildren(...answer.rows.map((row) => el("div", { class: "class-row" },
    el("div", { class: "class-name" }, row.class, el("small", {}, `${row.count.toLocaleString()} images`)),
    ...row.images.map((src) => el("img", { src, alt: row.class, width: side, height: side })))),
  more ? el("p", { class: "note" }, `classes${more}`) : "");
}

// ---------------------------------------------------------------- the augmentation preview

function buildControls(shape) {
  const side = Math.min(shape[1], shape[2]);
  view.controls.replaceChildren(...operations.map((op) => control(op, side)));
  view.presets.replaceChildren("presets: ", ...Object.entries(presets).map(([name, spec]) => el("button", {
    class: "action preset", title: spec, onclick: () => { view.spec.value = name; refreshPreview(); } }, name)));
  view.spec.value = specOfControls();
}

// Another data set: the same settings, with pixel sliders reaching half of its images' side (a value beyond that
// is brought within, and the spec follows).
function fitControls(shape) {
  const side = Math.min(shape[1], shape[2]);
  for (const op of operations.filter((o) => o.arg === "PIXELS")) {
    const value = view.controls.querySelector(`[data-value="${op.name}"]`);
    const top = Math.max(1, Math.floor(side * SLIDERS.PIXELS[1]));
    value.max = top;
    if (Number(value.value) > top) {
      value.value = top;
      value.nextElementSibling.textContent = value.value;
      if (view.controls.querySelector(`[data-op="${op.name}"]`).checked) view.spec.value = specOfControls();
    }
  }
}

function control(op, side) {
  const on = el("input", { type: "checkbox", "data-op": op.name, onchange: changed });
  on.checked = Boolean(START[op.name]);
  const meaning = op.meaning.replace(/\{v:g\}/g, op.arg || "");
  const parts = [el("label", { class: "op", title: op.rule ? `${op.arg}: ${op.rule}` : "" }, on, op.name)];
  if (op.arg) {
    const [low, high, step] = SLIDERS[op.arg] ?? [null, null, "any"];
    const top = op.arg === "PIXELS" ? Math.max(1, Math.floor(side * high)) : high;
    const value = el("input", { type: low == null ? "number" : "range", "data-value": op.name, step,
      ...(low == null ? {} : { min: low, max: top }) });
    value.value = Math.min(op.default, top ?? op.default);
    const shown = el("output", {}, value.value);
    value.addEventListener("input", () => {
      shown.textContent = value.value;
      on.checked = true;                  // moving a slider means using it
      changed();
    });
    parts.push(value, shown);
  }
  return el("div", { class: "op-row", title: meaning }, ...parts);
}

function changed() {
  view.spec.value = specOfControls();
  refreshPreview();
}

// The ticked operations in the library's order, e.g. "flip,rotate=10".
function specOfControls() {
  return operations.filter((op) => view.controls.querySelector(`[data-op="${op.name}"]`).checked).map((op) => {
    const value = view.controls.querySelector(`[data-value="${op.name}"]`);
    return value ? `${op.name}=${value.value}` : op.name;
  }).join(",");
}

const send = async () => {
  const dataset = picked.id;
  const answer = await api("datasets/augment", { dataset, spec: view.spec.value, count: 4, copies: 5,
    seed: augmentSeed });
  const [height, width] = answer.tile;
  const scale = Math.max(1, Math.min(4, Math.floor(110 / Math.max(height, width))));
  view.preview.src = answer.image;
  view.preview.style.width = `${scale * (answer.columns * (width + 2) - 2)}px`;
  view.original.style.width = `${scale * (width + 2)}px`;          // the label over the first column
  Object.assign(view.preview.dataset, { spec: answer.spec, of: dataset });
  view.describe.textContent = `${answer.spec}: ${answer.describe} (seed ${augmentSeed})`;
};
const refreshPreview = latestOnly(send, 120);
