// The training monitor: the runs under RUNS_DIR with their state; the chosen run's loss and accuracy curves (redrawn
// while it trains: the page polls a cheap stamp every two seconds); its confusion matrix on the test split, where a
// click on a cell shows that cell's test images, highest loss first; and ticked runs compared on one chart.
import { api, latest, STALE } from "./api.js";
import { colourLegend, el, svg } from "./dom.js";
import { intro } from "./glossary.js";

const POLL_MS = 2000;
const TRAIN = "#2f6fdb";
const VALID = "#e8710a";
const RUN_COLOURS = ["#2f6fdb", "#e8710a", "#1e9e57", "#c0392b", "#8e44ad", "#8c564b", "#d6389f", "#6b7280",
  "#a3a312", "#17a2b8", "#1d2430", "#f1a208"];
const METRIC_NAMES = { valid_acc: "validation accuracy", valid_loss: "validation loss", train_acc: "train accuracy",
  train_loss: "train loss" };
const CELL_TITLE = "Click a cell to see its test images";
const INTRO = [
  "Every run under the folder the server shows, with its state; a run still training updates here live. Click a " +
  "run for its loss and accuracy per epoch, on the training data and on the {validation|validation set}: when " +
  "training keeps improving and validation stops, the model has begun to learn its training images by heart.",
  "The {confusion-matrix|confusion matrix} counts the test images by true and predicted class; click a cell to see " +
  "its images, the most confident mistakes first. Tick runs to compare them on one chart. A run trained with " +
  "{label-smoothing|label smoothing} has a higher loss for the same accuracy: its targets were never 1.",
];

let view;
let runs = [];                // rows of GET monitor/runs
let stamps = {};
let chosen = null;            // the run shown in detail
let cell = null;              // [true, predicted] of the confusion cell shown
let polling = false;          // a poll still waiting for its answers: the next one is skipped
const compared = new Set();
// latest answer wins, for each kind of question: a run picked, or a cell clicked, meanwhile makes older answers stale
const [curvesAsked, confusionAsked, cellAsked, compareAsked] = [latest(), latest(), latest(), latest()];

export async function init(section) {
  view = build(section);
  await refreshRuns();
  const readable = runs.find((run) => !run.error);         // the newest run that can be read
  if (readable) await choose(readable.name);
  await drawComparison();
  stamps = await api("monitor/stamps");
  setInterval(poll, POLL_MS);
}

function build(section) {
  const v = {
    runs: el("tbody"),
    empty: el("p", { class: "note" }),
    title: el("h2"),
    subtitle: el("p", { class: "note" }),
    charts: el("div", { class: "charts" }),
    matrix: el("div", { class: "matrix" }),
    cellTitle: el("h3", {}, CELL_TITLE),
    cellImages: el("div", { class: "thumbs" }),
    metric: el("select", { onchange: () => drawComparison() },
      ...Object.entries(METRIC_NAMES).map(([key, name]) => el("option", { value: key }, name))),
    comparison: el("div", { class: "comparison" }),
    table: el("pre", { class: "compare-table" }),
  };
  const head = ["compare", "run", "model", "data set", "epochs", "best epoch", "best valid acc", "test accuracy",
    "state"];
  section.append(
    intro(INTRO, ["03-validation-dropout", "07-cifar-cnn"]),
    el("div", { class: "card" }, el("h2", {}, "Runs"),
      el("table", { class: "runs" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), v.runs),
      v.empty),
    el("div", { class: "card run-detail" }, v.title, v.subtitle, v.charts),
    el("div", { class: "card" }, el("h2", {}, "Confusion matrix on the test set"),
      el("div", { class: "confusion" }, v.matrix, el("div", { class: "cell" }, v.cellTitle, v.cellImages))),
    el("div", { class: "card" }, el("h2", {}, "Runs compared"),
      el("label", {}, "show ", v.metric), v.comparison, v.table),
  );
  return v;
}

// ---------------------------------------------------------------- the runs table

async function refreshRuns() {
  runs = await api("monitor/runs");
  const names = new Set(runs.map((r) => r.name));
  for (const name of [...compared]) if (!names.has(name)) compared.delete(name);
  view.runs.replaceChildren(...runs.map(runRow));
  view.empty.textContent = runs.length ? "" : "No runs yet: train one with `cnnlab train MODEL` into this RUNS_DIR.";
}

function runRow(run) {
  const tick = el("input", { type: "checkbox", title: "compare this run", onchange: () => {
    if (tick.checked) compared.add(run.name); else compared.delete(run.name);
    drawComparison();
  } });
  tick.checked = compared.has(run.name);
  const row = el("tr", { "data-run": run.name, class: run.name === chosen ? "chosen" : "" },
    el("td", {}, tick), el("td", { class: "name" }, run.name));
  if (run.error) {                        // one line saying why; nothing to show or compare
    tick.disabled = true;
    tick.title = "this run cannot be read";
    row.classList.add("broken");
    row.append(el("td", { colspan: 7, class: "error" }, run.error));
    return row;
  }
  const percent = (v) => (v == null ? "–" : `${(100 * v).toFixed(2)}%`);
  const corrupted = run.corrupt ? el("span", { class: "corrupt", title: "trained on corrupted data (--corrupt): " +
    "it can fit it, but learns nothing that carries to the test set" }, ` corrupted: ${run.corrupt}`) : "";
  row.append(el("td", {}, run.model), el("td", {}, run.dataset, corrupted),
    el("td", {}, `${run.epochs_done} / ${run.epochs_planned}`), el("td", {}, run.best_epoch ?? "–"),
    el("td", {}, percent(run.best_valid_acc)), el("td", {}, percent(run.test_accuracy)),
    el("td", {}, el("span", { class: `state ${run.state}`, title: run.detail }, stateText(run)),
      run.detail ? el("div", { class: "detail" }, run.detail) : ""));
  row.addEventListener("click", (event) => { if (event.target !== tick) choose(run.name); });
  return row;
}

// "training, epoch 3" (the epochs finished so far: 0 until the first ends), "finished", "stopped".
function stateText(run) {
  return run.state === "training" ? `training, epoch ${run.epochs_done}` : run.state;
}

// ---------------------------------------------------------------- one run: curves and confusion

async function choose(name) {
  const changed = name !== chosen;
  chosen = name;
  for (const row of view.runs.children) row.classList.toggle("chosen", row.dataset.run === name);
  if (changed) {                          // nothing of the previous run's cell stays
    cell = null;
    view.cellTitle.textContent = CELL_TITLE;
    view.cellImages.replaceChildren();
  }
  const answer = await curvesAsked(() => api(`monitor/runs/${encodeURIComponent(name)}/curves`));
  if (answer === STALE) return;
  drawCurves(answer);
  if (answer.run.best_epoch != null) await showConfusion(changed);
  else {
    view.matrix.replaceChildren(el("p", { class: "note" }, "No finished epoch yet: no weights to test."));
    delete view.matrix.dataset.run;
  }
}

function drawCurves({ run, history, best_epoch: best, loss_log_scale: log, train_note: note }) {
  const epochs = `${run.epochs_done} of ${run.epochs_planned} epochs`;
  view.title.textContent = run.name;
  view.subtitle.textContent = `${run.model} on ${run.dataset} · ${epochs} · ${stateText(run)}` +
    (note ? ` · train measured with ${note}` : "");
  const series = (key, scale = 1) => [
    { label: "train", colour: TRAIN, points: history.map((e) => [e.epoch, scale * e[`train_${key}`]]) },
    { label: "validation", colour: VALID, points: history.map((e) => [e.epoch, scale * e[`valid_${key}`]]) },
  ];
  view.charts.replaceChildren(
    chart({ title: "Loss per epoch", yLabel: log ? "loss (log scale)" : "loss", series: series("loss"), log, best,
      name: "loss" }),
    chart({ title: "Accuracy per epoch", yLabel: "accuracy (%)", series: series("acc", 100), best, name: "accuracy" }),
  );
}

async function showConfusion(fresh) {
  const name = chosen;
  if (fresh) {
    view.matrix.replaceChildren(el("p", { class: "note" }, "testing the best weights…"));
    delete view.matrix.dataset.run;
  }
  const answer = await confusionAsked(() => api(`monitor/runs/${encodeURIComponent(name)}/confusion`));
  if (answer === STALE || name !== chosen) return;
  view.matrix.replaceChildren(matrix(answer));
  view.matrix.dataset.run = name;
  if (cell) await showCell(...cell);
  else view.cellImages.replaceChildren();
}

// Rows are true classes, columns predictions; the colour is the fraction of the true class (as confusion.png).
function matrix({ classes, counts, total, accuracy }) {
  const numbers = classes.length <= 20;
  const header = el("tr", {}, el("th", { class: "corner" }, "true ↓ predicted →"),
    ...classes.map((c) => el("th", { class: "predicted", title: c }, c)));
  const rows = counts.map((row, i) => {
    const sum = row.reduce((a, b) => a + b, 0) || 1;
    return el("tr", {}, el("th", { title: classes[i] }, classes[i]), ...row.map((count, j) => {
      const rate = count / sum;
      const td = el("td", { "data-true": i, "data-predicted": j, class: i === j ? "diagonal" : "",
        title: `true ${classes[i]}, predicted ${classes[j]}: ${count} (${(100 * rate).toFixed(1)}% of ${classes[i]})`,
        onclick: () => showCell(i, j) }, numbers ? String(count) : "");
      td.style.background = blues(rate);
      td.style.color = rate > 0.5 ? "#fff" : "var(--ink)";
      return td;
    }));
  });
  return el("div", {}, el("table", { class: "confusion-matrix" }, header, ...rows),
    el("p", { class: "note" }, `${total} test images, accuracy ${(100 * accuracy).toFixed(2)}%`),
    colourLegend([blues(0), blues(0.5), blues(1)], ["0%", "50%", "100%"],
      "colour: the share of the row's true class predicted as the column's class"));
}

function probabilityText(p) {   // 0.2%, 36%: a mistake's tiny probabilities still readable
  return p < 0.1 ? `${(100 * p).toFixed(1)}%` : `${Math.round(100 * p)}%`;
}

function blues(rate) {       // white to dark blue, as matplotlib's "Blues"
  const [a, b] = [[247, 251, 255], [8, 48, 107]];
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * rate)).join(",")})`;
}

async function showCell(i, j) {
  cell = [i, j];
  for (const td of view.matrix.querySelectorAll("td")) {
    td.classList.toggle("picked", +td.dataset.true === i && +td.dataset.predicted === j);
  }
  const path = `monitor/runs/${encodeURIComponent(chosen)}/confusion/${i}/${j}?limit=60`;
  const answer = await cellAsked(() => api(path));
  if (answer === STALE) return;
  const shown = answer.images.length < answer.count ? `, the first ${answer.images.length}` : "";
  // ranked by loss, -log p(true class): under each image that probability, so the order shows
  const order = i === j ? "least sure first" : "most confident mistakes first";
  view.cellTitle.replaceChildren(`true ${answer.true}, predicted ${answer.predicted}: ${answer.count} image` +
    `${answer.count === 1 ? "" : "s"}${shown}, ${order}`,
  el("small", {}, `under each: the probability the model gave ${answer.true} (highest loss = lowest first)`));
  view.cellImages.replaceChildren(...answer.images.map((image) => el("figure", {
    title: `test image ${image.index}: p(${answer.predicted}) = ${image.probability.toFixed(3)}, ` +
      `p(${answer.true}) = ${image.true_probability.toFixed(3)}, loss ${image.loss.toFixed(3)}` },
  el("img", { src: image.image, alt: `test image ${image.index}` }),
  el("figcaption", {}, probabilityText(image.true_probability)))));
  if (!answer.count) view.cellImages.append(el("p", { class: "note" }, "No test image landed in this cell."));
}

// ---------------------------------------------------------------- runs compared

async function drawComparison() {
  const names = runs.filter((r) => compared.has(r.name)).map((r) => r.name);
  if (!names.length) {
    view.comparison.replaceChildren(el("p", { class: "note" }, "Tick two or more runs in the table to compare them."));
    view.table.textContent = "";
    return;
  }
  const metric = view.metric.value;
  const answer = await compareAsked(() => api("monitor/compare", { runs: names, metric }));
  if (answer === STALE) return;
  const accuracy = metric.endsWith("acc");
  const series = answer.series.map((s) => ({ label: s.run, colour: RUN_COLOURS[names.indexOf(s.run) % 12],
    points: s.epochs.map((epoch, k) => [epoch, (accuracy ? 100 : 1) * s.values[k]]) }));
  const yLabel = `${METRIC_NAMES[metric]}${accuracy ? " (%)" : ""}${answer.log_scale ? " (log scale)" : ""}`;
  view.comparison.replaceChildren(chart({ title: `${METRIC_NAMES[metric]} per epoch`, yLabel, series,
    log: answer.log_scale, name: "compare", width: 860, height: 320 }));
  view.table.textContent = answer.table;
}

// ---------------------------------------------------------------- live: a cheap stamp polled, the rest on change

async function poll() {
  if (polling || document.hidden || !view.runs.closest(".panel.active")) return;
  polling = true;
  try {
    await update();
  } catch { /* api() has shown the error; the next poll tries again */ } finally {
    polling = false;
  }
}

async function update() {
  const now = await api("monitor/stamps");
  if (JSON.stringify(now) === JSON.stringify(stamps)) return;
  const changed = Object.keys({ ...now, ...stamps }).filter((name) => now[name] !== stamps[name]);
  stamps = now;
  const before = runs.find((r) => r.name === chosen);
  await refreshRuns();
  const after = runs.find((r) => r.name === chosen);
  if (chosen && !after) {
    chosen = null;
    view.title.textContent = "That run is gone (its folder was removed).";
  } else if (chosen && changed.includes(chosen)) {
    const answer = await curvesAsked(() => api(`monitor/runs/${encodeURIComponent(chosen)}/curves`));
    if (answer === STALE) return;
    drawCurves(answer);
    if (after.best_epoch != null && after.best_epoch !== before?.best_epoch) await showConfusion(false);
  }
  if (changed.some((name) => compared.has(name))) await drawComparison();
}

// ---------------------------------------------------------------- an SVG line chart: epochs across, values up

function chart({ title, yLabel, series, log = false, best = null, name, width = 600, height = 300 }) {
  const margin = { left: 62, right: 14, top: 30, bottom: 42 };
  const inner = { w: width - margin.left - margin.right, h: height - margin.top - margin.bottom };
  const points = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!log || y > 0));
  const xs = points.map(([x]) => x);
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [1, 1];
  const toY = log ? Math.log10 : (v) => v;
  const [y0, y1] = padded(points.map(([, y]) => toY(y)));
  const room = 0.04 * inner.w;                               // the first and last points off the frame
  const sx = (x) => margin.left + (x1 === x0 ? inner.w / 2 : room + ((x - x0) / (x1 - x0)) * (inner.w - 2 * room));
  const sy = (y) => margin.top + inner.h - ((toY(y) - y0) / (y1 - y0)) * inner.h;
  const picture = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart", "data-chart": name });
  picture.append(svg("text", { x: margin.left, y: 18, class: "title" }, title));
  for (const v of log ? logTicks(y0, y1) : niceTicks(y0, y1)) {
    const y = sy(log ? 10 ** v : v);
    picture.append(svg("line", { x1: margin.left, x2: width - margin.right, y1: y, y2: y, class: "grid" }),
      svg("text", { x: margin.left - 6, y: y + 4, class: "tick y" }, formatTick(log ? 10 ** v : v)));
  }
  for (const x of epochTicks(x0, x1)) {
    picture.append(svg("text", { x: sx(x), y: height - margin.bottom + 16, class: "tick x" }, String(x)));
  }
  picture.append(svg("text", { x: margin.left + inner.w / 2, y: height - 6, class: "axis" }, "epoch"),
    svg("text", { x: 14, y: margin.top + inner.h / 2, class: "axis",
      transform: `rotate(-90 14 ${margin.top + inner.h / 2})` }, yLabel),
    svg("rect", { x: margin.left, y: margin.top, width: inner.w, height: inner.h, class: "frame" }));
  if (best != null) {
    picture.append(svg("line", { x1: sx(best), x2: sx(best), y1: margin.top, y2: margin.top + inner.h,
      class: "best" }));
  }
  for (const s of series) {
    const kept = s.points.filter(([, y]) => Number.isFinite(y) && (!log || y > 0));
    const path = kept.map(([x, y], k) => `${k ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
    picture.append(svg("path", { d: path, stroke: s.colour, class: "line", "data-series": s.label }));
    for (const [x, y] of kept) {
      picture.append(svg("circle", { cx: sx(x), cy: sy(y), r: 3, fill: s.colour },
        svg("title", {}, `${s.label}, epoch ${x}: ${formatTick(y)}`)));
    }
  }
  const legend = el("div", { class: "legend" }, ...series.map((s) => el("span", {},
    el("i", { style: `background:${s.colour}` }), s.label)));
  if (best != null) legend.append(el("span", {}, el("i", { class: "best" }), `best (epoch ${best})`));
  return el("figure", { class: "chart" }, picture, legend);
}

function padded(values) {    // the value range with a little room above and below
  if (!values.length) return [0, 1];
  let [low, high] = [Math.min(...values), Math.max(...values)];
  if (high === low) [low, high] = [low - (Math.abs(low) * 0.1 || 0.5), high + (Math.abs(high) * 0.1 || 0.5)];
  const room = (high - low) * 0.06;
  return [low - room, high + room];
}

function niceTicks(low, high, count = 5) {
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const ticks = [];
  for (let v = Math.ceil(low / step) * step; v <= high; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function logTicks(low, high) {  // powers of ten inside [low, high] (in log10 units); 2 and 5 between when few
  const decades = [];
  for (let p = Math.ceil(low); p <= Math.floor(high); p++) decades.push(p);
  if (decades.length > 2) return decades;
  const ticks = [];
  for (let p = Math.floor(low); p <= Math.ceil(high); p++) {
    for (const m of [1, 2, 5]) {
      const v = p + Math.log10(m);
      if (v >= low && v <= high) ticks.push(v);
    }
  }
  return ticks;
}

function epochTicks(first, last) {  // one per epoch up to 12, else whole numbers about 8 apart
  const step = last - first < 12 ? 1 : Math.ceil((last - first) / 8);
  const ticks = [];
  for (let x = first; x <= last; x += step) ticks.push(x);
  return ticks;
}

function formatTick(v) {
  if (v === 0) return "0";
  const size = Math.abs(v);
  return size >= 1000 || size < 0.001 ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}
