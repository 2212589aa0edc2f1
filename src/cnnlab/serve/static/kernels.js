// The kernel playground: a picture, a kernel (named, or typed into a 3x3 / 5x5 grid) and what filter2D makes of
// it: the filtered picture, the picture's Fourier spectrum and the kernel's frequency response, redrawn as a number
// changes. A picture is uploaded once (api/pictures) and named by its id after that, so an edit sends only the kernel.
import { api, el, fileToDataURL, latestOnly, webcamFrame } from "./app.js";

// A number or a fraction such as 1/9 (the grid shows blurs that way); a half-typed cell is marked and not sent.
const NUMBER = String.raw`\s*[\-+]?(\d+\.?\d*|\.\d+)(\s*/\s*(\d+\.?\d*|\.\d+))?\s*`;

const state = { image: "sample:city", dataURL: null, kernel: "sobel-x" };
let library;
let view;

export async function init(section) {
  library = await api("kernels");
  view = build(section);
  chooseKernel(state.kernel);
  await showPicture();
}

const refresh = latestOnly(async () => {
  const answer = await withPicture(() => api("kernels/filter", {
    image: state.image, kernel: state.kernel ?? gridCells(), display: view.display.value,
    border: view.border.value, color: view.color.checked, blur_first: view.blur.checked,
  }));
  view.filtered.src = answer.filtered;
  view.filteredCaption.replaceChildren(el("b", {}, answer.label), " · ", scaleText(answer));
  view.response.src = answer.response;
  view.responseCaption.textContent = `|frequency response| of the kernel: gain ${round(answer.gain)} on flat ` +
    `areas (the centre), at most ${round(answer.response_max)}; further out = finer patterns, the corners ±0.5 ` +
    "cycles per pixel";
});

// What black and white stand for, as `cnnlab filter` says it.
function scaleText({ caption, display, black, white, low, high }) {
  const middle = display === "signed" ? `, mid-grey = 0` : "";
  return `${caption}: black = ${round(black)}${middle}, white = ${round(white)} ` +
    `(the response runs ${round(low)} .. ${round(high)})`;
}

async function showPicture() {
  const answer = await withPicture(() => api(
    `kernels/spectrum?image=${encodeURIComponent(state.image)}&color=${view.color.checked}`));
  view.input.src = answer.picture;
  view.inputCaption.textContent = `${view.color.checked ? "colour" : "grey"} ${answer.width}x${answer.height} ` +
    "· drop a picture here";
  view.spectrum.src = answer.spectrum;
  const [u, v] = answer.strongest;
  view.spectrumCaption.textContent = "log(1 + |FFT|), centred: the middle is the mean brightness, further out " +
    `finer patterns; strongest besides the mean: ±(${u}, ${v}) cycles per image (across, down)`;
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

// Typing in the grid makes the kernel a custom one; sent once every cell reads as a number.
function editCell() {
  state.kernel = null;
  view.kernelName.value = "custom";
  view.description.textContent = "your own kernel: edit any number";
  if (view.grid.querySelectorAll("input:invalid").length === 0) refresh();
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

function labelled(text, control) {
  return el("label", {}, text, " ", control);
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
  for (const name of ["input", "filtered", "spectrum", "response"]) {
    v[name] = el("img", { alt: name });
    v[name + "Caption"] = el("figcaption");
  }

  const dropZone = figure("Picture", v.input, v.inputCaption, { class: "drop" });
  dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("over"); });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
  dropZone.addEventListener("drop", async (event) => {
    event.preventDefault();
    dropZone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) usePicture(await fileToDataURL(file), file.name);
  });

  section.append(el("div", { class: "playground" },
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
        v.description, v.grid,
        el("p", { class: "note" }, "Type any number or fraction (1/9). filter2D, like nn.Conv2d, computes a " +
          "correlation: the kernel is laid on the picture as written, not flipped."))),
    el("div", { class: "card figures" },
      dropZone, figure("Filtered", v.filtered, v.filteredCaption),
      figure("Fourier spectrum of the picture", v.spectrum, v.spectrumCaption),
      figure("Frequency response of the kernel", v.response, v.responseCaption, { class: "response" }))));
  return v;
}

function round(x) {
  return Math.abs(x) < 1e-9 ? 0 : Number(x.toPrecision(4));      // 1e-17 from floating point reads as 0
}
