// The kernel playground: a picture, a kernel (named, or typed into a 3x3 / 5x5 grid) and what filter2D makes of
// it: the filtered picture, the picture's Fourier spectrum and the kernel's frequency response, redrawn as a number
// changes. A picture is uploaded once (api/pictures) and named by its id after that, so an edit sends only the kernel.
// Under the pointer, the multiply-add on the picture's own pixels: the pixels, the kernel, the products, the sum.
import { api, latestOnly } from "./api.js";
import { colourLegend, el, fileToDataURL, labelled, round, webcamFrame } from "./dom.js";
import { intro, prose } from "./glossary.js";

// A number or a fraction such as 1/9 (the grid shows blurs that way); a half-typed cell is marked and not sent.
const NUMBER = String.raw`\s*[\-+]?(\d+\.?\d*|\.\d+)(\s*/\s*(\d+\.?\d*|\.\d+))?\s*`;

const state = { image: "sample:city", dataURL: null, kernel: "sobel-x" };
let library;
let view;
let shown = null;          // the picture's grey pixels as drawn: {width, height, data} (one byte per pixel)

const INTRO = [
  "A {kernel} is a small grid of weights. Laid over every pixel of the picture, it multiplies the pixels under " +
  "it by its weights and adds the products: that sum is the filtered picture's pixel. Move the pointer over the " +
  "picture to see that multiply-add with the picture's own numbers.",
  "Try: sobel-x finds vertical edges (its weights sum to 0, so flat areas go dark); a blur's weights sum to 1; type " +
  "your own numbers into the grid. The {fourier} shows which waves the picture is made of, and the kernel's " +
  "{frequency-response} which of them it keeps. The border setting is how {padding} is made up at the edges.",
];

export async function init(section) {
  library = await api("kernels");
  view = build(section);
  chooseKernel(state.kernel);
  await showPicture();
}

// A kernel the server refuses (a cell that is not a number, weights so large the picture overflows) is said under
// the grid, in the server's words, and the pictures it would replace are marked out of date.
const refresh = latestOnly(async () => {
  let answer;
  try {
    answer = await withPicture(() => api("kernels/filter", {
      image: state.image, kernel: state.kernel ?? gridCells(), display: view.display.value,
      border: view.border.value, color: view.color.checked, blur_first: view.blur.checked,
    }, { quiet: true }));
  } catch (error) {
    view.kernelError.textContent = error.message;
    view.kernelError.hidden = false;
    for (const figure of [view.filtered, view.response]) figure.classList.add("stale");
    view.filteredCaption.textContent = "out of date: the picture above is the last kernel's, not this one's";
    throw error;
  }
  view.kernelError.hidden = true;
  for (const figure of [view.filtered, view.response]) figure.classList.remove("stale");
  view.filtered.src = answer.filtered;
  view.filteredCaption.replaceChildren(el("b", {}, answer.label), " · ", scaleText(answer),
    answer.why ? el("span", { class: "why" }, ` ${answer.why}.`) : "", greyLegend(answer));
  view.response.src = answer.response;
  view.responseCaption.replaceChildren(`|frequency response| of the kernel: gain ${round(answer.gain)} on flat ` +
    `areas (the centre), at most ${round(answer.response_max)}; further out = finer patterns, the corners ±0.5 ` +
    "cycles per pixel", colourLegend(MAGMA, ["0: blocked", `${round(answer.response_max)}: passed most`],
    "dark = the kernel removes that wave, bright = keeps or strengthens it"));
  explainPointer();
});

const MAGMA = ["#000004", "#3b0f70", "#8c2981", "#de4968", "#fe9f6d", "#fcfdbf"];

// What black and white stand for, as `cnnlab filter` says it.
function scaleText({ caption, display, black, white, low, high }) {
  const middle = display === "signed" ? `, mid-grey = 0` : "";
  return `${caption}: black = ${round(black)}${middle}, white = ${round(white)} ` +
    `(the response runs ${round(low)} .. ${round(high)}).`;
}

function greyLegend({ display, black, white }) {
  const labels = display === "signed" ? [String(round(black)), "0", String(round(white))]
    : [String(round(black)), String(round(white))];
  const what = { abs: "black = no response, white = the strongest, either sign",
    clip: "the output as pixels: below 0 black, above 255 white", signed: "below 0 darker, above 0 brighter" };
  return colourLegend(["#000", "#fff"], labels, what[display]);
}

async function showPicture() {
  const answer = await withPicture(() => api(
    `kernels/spectrum?image=${encodeURIComponent(state.image)}&color=${view.color.checked}`));
  view.input.src = answer.picture;
  view.inputCaption.textContent = `${view.color.checked ? "colour" : "grey"} ${answer.width}x${answer.height} ` +
    "· drop a picture here";
  view.spectrum.src = answer.spectrum;
  const [u, v] = answer.strongest;
  view.spectrumCaption.replaceChildren("log(1 + |FFT|), centred: the middle is the mean brightness, further out " +
    `finer patterns; strongest besides the mean: ±(${u}, ${v}) cycles per image (across, down)`,
  colourLegend(MAGMA, ["weak", "strong (log scale)"], "how much of each wave the picture holds"));
  refresh();
}

// The server keeps only the last few uploads: if ours was dropped, send it again (same content, same id) and retry.
async function withPicture(request) {
  try {
    return await request();
  } catch (error) {
    if (!state.dataURL || !String(error.message).includes("not held")) throw error;
    await api("pictures", { image: state.dataURL });
    return request();
  }
}

async function usePicture(dataURL, name) {
  if (!dataURL) return;
  const answer = await api("pictures", { image: dataURL });
  state.image = answer.id;
  state.dataURL = dataURL;
  const [width, height] = answer.original;
  const shrunk = width !== answer.width || height !== answer.height ? ` (from ${width}x${height})` : "";
  view.uploaded.value = answer.id;
  view.uploaded.textContent = `${name}${shrunk}`;
  view.uploaded.hidden = false;
  view.picture.value = answer.id;
  await showPicture();
}

function chooseKernel(name) {
  const kernel = library.kernels.find((k) => k.name === name);
  state.kernel = name;
  view.kernelName.value = name;
  view.description.textContent = kernel.description;
  view.side.value = String(kernel.cells.length);
  drawGrid(kernel.cells);
  refresh();
}

// Typing in the grid makes the kernel a custom one. Sent as typed: a cell that is not a number is marked, and the
// server's message says which one and what to type.
function editCell() {
  state.kernel = null;
  view.kernelName.value = "custom";
  view.description.textContent = "your own kernel: edit any number";
  explainPointer();
  refresh();
}

function drawGrid(cells) {
  view.grid.style.gridTemplateColumns = `repeat(${cells.length}, minmax(0, 1fr))`;
  view.grid.className = `kernel-grid side-${cells.length}`;
  view.grid.replaceChildren(...cells.flatMap((row, r) => row.map((value, c) => el("input", {
    value, pattern: NUMBER, inputmode: "decimal", spellcheck: "false", "aria-label": `row ${r + 1}, column ${c + 1}`,
    oninput: editCell,
  }))));
}

function gridCells() {
  const values = [...view.grid.querySelectorAll("input")].map((input) => input.value);
  const side = Math.sqrt(values.length);
  return Array.from({ length: side }, (_, r) => values.slice(r * side, (r + 1) * side));
}

// 3x3 <-> 5x5: a ring of zeros around the kernel, or its centre; either way it is now a custom kernel.
function resizeGrid(side) {
  const cells = gridCells();
  const shift = (cells.length - side) / 2;
  drawGrid(Array.from({ length: side }, (_, r) => Array.from({ length: side }, (_, c) =>
    cells[r + shift]?.[c + shift] ?? "0")));
  editCell();
}

function options(values, labels = values) {
  return values.map((value, i) => el("option", { value }, labels[i]));
}

function figure(title, img, caption, attributes = {}) {
  return el("figure", attributes, el("figcaption", { class: "title" }, title), img, caption);
}

function build(section) {
  const v = {};
  v.uploaded = el("option", { hidden: "" });
  v.picture = el("select", {
    onchange: () => { state.image = v.picture.value; showPicture(); },
  }, ...library.samples.map((s) => el("option", { value: s.id, title: s.description }, s.name)), v.uploaded);
  v.file = el("input", { type: "file", accept: "image/*",
    onchange: async () => v.file.files[0] && usePicture(await fileToDataURL(v.file.files[0]), v.file.files[0].name) });
  v.color = el("input", { type: "checkbox", onchange: showPicture });
  v.blur = el("input", { type: "checkbox", onchange: refresh });
  v.border = el("select", { onchange: refresh }, ...options(library.borders));
  v.display = el("select", { onchange: refresh }, ...options(library.displays));
  v.kernelName = el("select", { onchange: () => chooseKernel(v.kernelName.value) },
    ...options(library.kernels.map((k) => k.name)), el("option", { value: "custom", disabled: "" }, "custom"));
  v.side = el("select", { onchange: () => resizeGrid(Number(v.side.value)) }, ...options(["3", "5"], ["3x3", "5x5"]));
  v.description = el("p", { class: "description" });
  v.grid = el("div", { class: "kernel-grid" });
  v.kernelError = el("p", { class: "panel-error kernel-error", role: "alert", hidden: "" });
  for (const name of ["input", "filtered", "spectrum", "response"]) {
    v[name] = el("img", { alt: name });
    v[name + "Caption"] = el("figcaption");
  }
  v.input.addEventListener("load", readPixels);
  v.readout = el("div", { class: "readout" }, "Move the pointer over the picture: the multiply-add at that pixel " +
    "shows here.");
  v.window = el("div", { class: "window", hidden: "" });
  for (const picture of [v.input, v.filtered]) {
    picture.addEventListener("pointermove", (event) => pointAt(picture, event));
  }

  const dropZone = figure("Picture", el("div", { class: "frame" }, v.input, v.window), v.inputCaption,
    { class: "drop" });
  dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("over"); });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
  dropZone.addEventListener("drop", async (event) => {
    event.preventDefault();
    dropZone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) usePicture(await fileToDataURL(file), file.name);
  });

  section.append(intro(INTRO, ["05-filters-frequency"]), el("div", { class: "playground" },
    el("div", { class: "side" },
      el("div", { class: "card picture" },
        el("h2", {}, "Picture"),
        labelled("sample", v.picture), labelled("or upload", v.file),
        el("label", {}, "or film", " ",
          el("button", { class: "action", onclick: async () => usePicture(await webcamFrame(), "webcam") },
            "Webcam")),
        el("div", { class: "row" }, labelled("colour", v.color), labelled("blur first", v.blur)),
        labelled("border", v.border), labelled("display", v.display)),
      el("div", { class: "card kernel" },
        el("h2", {}, "Kernel"),
        el("div", { class: "row" }, labelled("named", v.kernelName), labelled("size", v.side)),
        v.description, v.grid, v.kernelError,
        el("p", { class: "note" }, "Type any number or fraction (1/9). filter2D, like nn.Conv2d, computes a " +
          "correlation: the kernel is laid on the picture as written, not flipped."))),
    el("div", { class: "card figures" },
      dropZone, figure("Filtered", v.filtered, v.filteredCaption),
      el("div", { class: "multiply-add" }, el("h2", {}, "The multiply-add under the pointer"), v.readout),
      figure(el("span", {}, ...prose("{fourier|Fourier spectrum} of the picture")), v.spectrum, v.spectrumCaption),
      figure(el("span", {}, ...prose("{frequency-response|Frequency response} of the kernel")), v.response,
        v.responseCaption, { class: "response" }))));
  return v;
}

// --- the multiply-add under the pointer -----------------------------------------------------------------------------

let pointer = null;        // [row, column] of the picture's pixel under the pointer, once it was over the picture

// The picture as drawn, one grey byte per pixel (the server sends it grey unless "colour" is ticked).
function readPixels() {
  const { naturalWidth: width, naturalHeight: height } = view.input;
  const canvas = el("canvas", { width, height });
  const context = canvas.getContext("2d");
  context.drawImage(view.input, 0, 0);
  const rgba = context.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = rgba[4 * i];
  shown = { width, height, data };
  explainPointer();
}

// Where the pointer is, in the picture's own pixels: the images are drawn scaled to fit, from the top left.
function pointAt(picture, event) {
  if (!shown) return;
  const box = picture.getBoundingClientRect();
  const scale = Math.min(box.width / shown.width, box.height / shown.height);
  const [column, row] = [(event.clientX - box.left) / scale, (event.clientY - box.top) / scale].map(Math.floor);
  if (column < 0 || row < 0 || column >= shown.width || row >= shown.height) return;
  pointer = [row, column];
  explainPointer();
}

// Where a row or column index beyond the edge reads from, for each border mode; null = a zero (constant).
const BORDER_INDEX = {
  "reflect-101": (i, n) => (i < 0 ? -i : i >= n ? 2 * n - 2 - i : i),
  reflect: (i, n) => (i < 0 ? -i - 1 : i >= n ? 2 * n - 1 - i : i),
  replicate: (i, n) => Math.min(n - 1, Math.max(0, i)),
  constant: (i, n) => (i < 0 || i >= n ? null : i),
  wrap: (i, n) => ((i % n) + n) % n,
};

function kernelNumbers() {
  if (state.kernel) return library.kernels.find((k) => k.name === state.kernel).matrix;
  const rows = gridCells().map((row) => row.map(cellNumber));
  return rows.flat().every(Number.isFinite) ? rows : null;
}

function cellNumber(text) {
  if (!new RegExp(`^${NUMBER}$`).test(text)) return NaN;
  const [top, bottom] = text.split("/");
  return bottom === undefined ? Number(top) : Number(top) / Number(bottom);
}

function explainPointer() {
  if (!pointer || !shown) return;
  const kernel = kernelNumbers();
  const why = view.color.checked ? "The multiply-add is shown on the grey picture: untick colour to follow it."
    : view.blur.checked ? "\"blur first\" is on: the kernel sees the blurred picture, not these pixels; untick it to " +
      "follow the multiply-add." : !kernel ? "Fix the kernel's cells first." : "";
  if (why) {
    view.readout.replaceChildren(why);
    view.window.hidden = true;
    return;
  }
  const [row, column] = pointer;
  const half = (kernel.length - 1) / 2;
  const place = BORDER_INDEX[view.border.value];
  const pixels = kernel.map((line, i) => line.map((_, j) => {
    const [r, c] = [place(row + i - half, shown.height), place(column + j - half, shown.width)];
    return r === null || c === null ? 0 : shown.data[r * shown.width + c];
  }));
  const products = kernel.map((line, i) => line.map((weight, j) => pixels[i][j] * weight));
  const sum = products.flat().reduce((a, b) => a + b, 0);
  const grid = (name, values) => el("div", { class: `numbers ${name}`, "data-name": name,
    style: `grid-template-columns: repeat(${kernel.length}, auto)` },
  ...values.flat().map((value) => el("span", { "data-value": value }, String(round(value)))));
  view.readout.replaceChildren(
    el("p", {}, `pixel row ${row}, column ${column} (from the top left, from 0): the ${kernel.length}x` +
      `${kernel.length} pixels around it${row < half || column < half || row >= shown.height - half ||
        column >= shown.width - half ? `, beyond the edge made up by "${view.border.value}"` : ""}`),
    el("div", { class: "terms" }, el("figure", {}, grid("pixels", pixels), el("figcaption", {}, "pixels")), "×",
      el("figure", {}, grid("kernel", kernel), el("figcaption", {}, "kernel")), "=",
      el("figure", {}, grid("products", products), el("figcaption", {}, "products"))),
    el("p", { class: "sum" }, "sum of the products = ", el("b", { "data-value": sum }, String(round(sum))),
      ": the filtered picture's value at this pixel, before it is scaled to black..white"));
  const box = view.input.getBoundingClientRect();
  const scale = Math.min(box.width / shown.width, box.height / shown.height);
  Object.assign(view.window.style, { left: `${(column - half) * scale}px`, top: `${(row - half) * scale}px`,
    width: `${kernel.length * scale}px`, height: `${kernel.length * scale}px` });
  view.window.hidden = false;
}
