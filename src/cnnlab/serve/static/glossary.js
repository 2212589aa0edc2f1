// The explorer's words: every term a panel explains on hover, and the lesson notebook each panel belongs to.
// One place: a panel writes "the {softmax} of the {logit|logits}" and prose() turns each {term} into a hover.
import { el } from "./dom.js";

export const TERMS = {
  logit: ["logit", "The raw score a network gives a class before softmax: any number, larger = more likely."],
  softmax: ["softmax", "Turns the logits into probabilities: e^logit of each class divided by the sum over all " +
    "classes, so they are positive and add up to 1."],
  "label-smoothing": ["label smoothing", "Training against a target of 1 − ε + ε/K for the true class (ε shared " +
    "among the K classes) instead of 1: the model learns not to be over-sure, so its top probability stays below 1."],
  batchnorm: ["BatchNorm", "Batch normalization: each channel rescaled to mean 0 and variance 1 (over the batch " +
    "while training, by running averages at test time), then a learned scale and shift."],
  relu: ["ReLU", "Rectified linear unit, max(0, x): positive values pass, negative ones become 0."],
  stride: ["stride", "How many pixels the window moves between one output and the next; stride 2 halves the size."],
  padding: ["padding", "Pixels added around the input (zeros in nn.Conv2d), so the window also fits over the edges."],
  dilation: ["dilation", "The spacing of a kernel's taps: dilation 2 spreads a 3x3 kernel over 5x5 pixels, " +
    "skipping every other one."],
  "receptive-field": ["receptive field", "The patch of the input image one output value depends on; it grows " +
    "with every conv or pooling layer."],
  fourier: ["Fourier spectrum", "The picture written as a sum of waves: how strong each wave (how fine, which " +
    "direction) is. The centre is the mean brightness, further out are finer patterns."],
  gradcam: ["Grad-CAM", "Weights the last conv layer's channels by the gradient of the class score, adds them and " +
    "keeps the positive part: a coarse map of where that layer saw evidence for the class."],
  saliency: ["saliency", "The gradient of the class score with respect to each input pixel: how much a small " +
    "change of that pixel would move the score (its size only, so never negative)."],
  occlusion: ["occlusion", "Covers one patch of the image at a time and measures the class score's drop: positive " +
    "where the patch helped the class, negative where it spoke against it."],
  kernel: ["kernel", "A small grid of weights laid over each position of the picture: the output there is the sum " +
    "of weight × pixel (a multiply-add)."],
  "feature-map": ["feature map", "One channel of a layer's output: where in the image that channel's pattern is."],
  channel: ["channel", "One of the stacked pictures a layer takes or gives: red, green, blue at the input, one per " +
    "filter after a conv layer."],
  bias: ["bias", "A learned number added to every value of an output channel after the multiply-adds."],
  pooling: ["max-pooling", "Keeps the largest value of each small window (2x2 here): a smaller map that still " +
    "says whether the pattern was there."],
  "confusion-matrix": ["confusion matrix", "Counts of test images by true class (rows) and predicted class " +
    "(columns): the diagonal is right, everything else a mistake."],
  validation: ["validation set", "Images held out of training and used to pick the best epoch; the test set is " +
    "kept for the final score."],
  augmentation: ["augmentation", "Random changes to each training image (flips, turns, crops) every epoch: more " +
    "varied data from the same images."],
  "frequency-response": ["frequency response", "How much a kernel strengthens or weakens each wave of the picture: " +
    "its gain at every frequency."],
};

// Layer classes as PyTorch names them -> the term that explains them.
export const LAYER_TERMS = { ReLU: "relu", BatchNorm2d: "batchnorm", BatchNorm1d: "batchnorm", MaxPool2d: "pooling",
  Conv2d: "kernel" };

export const LESSONS = {
  "01-mnist-pixels": "MNIST, pixels and normalization",
  "02-mlp": "an MLP, class scores, loss and optimization",
  "03-validation-dropout": "validation, overfitting and dropout",
  "04-mlp-vs-cnn": "MLPs vs CNNs and local connectivity",
  "05-filters-frequency": "filters, edges and frequency",
  "06-conv-layer": "the convolutional layer",
  "07-cifar-cnn": "the CIFAR-10 CNN",
  "08-architectures": "deeper networks and the classic architectures",
  "09-capsules": "capsule networks",
  "10-visualizing": "visualizing CNNs",
};

// One term as a hoverable word: {term} or, with other words shown, term(id, "logits").
export function term(id, shown) {
  const [name, definition] = TERMS[id];
  return el("dfn", { class: "term", tabindex: "0", "data-term": id, "data-definition": definition }, shown ?? name);
}

// "the {softmax} of the {logit|logits}" -> text and hoverable terms.
export function prose(text) {
  return text.split(/(\{[^}]+\})/).filter(Boolean).map((part) => {
    if (!part.startsWith("{")) return part;
    const [id, shown] = part.slice(1, -1).split("|");
    if (!(id in TERMS)) throw new Error(`no glossary term ${id}`);
    return term(id, shown);
  });
}

// A lesson notebook's link: "Lesson 6: the convolutional layer (run `cnnlab lessons`)".
export function lessonLink(name) {
  const number = Number(name.slice(0, 2));
  return el("a", { class: "lesson", href: `api/lessons/${name}.ipynb`, download: `${name}.ipynb`, "data-lesson": name,
    title: `${name}.ipynb, to open in Jupyter; \`cnnlab lessons --copy DIR\` copies all ten` },
  `Lesson ${number}: ${LESSONS[name]}`, " (run ", el("code", {}, "cnnlab lessons"), ")");
}

// A panel's opening: a few sentences (each a prose() string) and the lessons it belongs to.
export function intro(sentences, lessons) {
  const links = lessons.flatMap((name, i) => [i ? " · " : "", lessonLink(name)]);
  return el("div", { class: "card intro" }, ...sentences.map((text) => el("p", {}, ...prose(text))),
    el("p", { class: "lessons" }, "Learn more: ", ...links));
}

// One tooltip for the whole page, shown beside the term under the pointer or keyboard focus.
export function startTooltips() {
  const tip = el("div", { id: "tooltip", role: "tooltip", hidden: "" });
  document.body.append(tip);
  const show = (event) => {
    const target = event.target.closest?.("[data-definition]");
    if (!target) return;
    tip.replaceChildren(el("b", {}, TERMS[target.dataset.term]?.[0] ?? ""), " ", target.dataset.definition);
    tip.hidden = false;
    const box = target.getBoundingClientRect();
    const left = Math.min(box.left + window.scrollX, window.scrollX + document.documentElement.clientWidth - 340);
    Object.assign(tip.style, { left: `${Math.max(4, left)}px`, top: `${box.bottom + window.scrollY + 6}px` });
    target.setAttribute("aria-describedby", "tooltip");
  };
  const hide = (event) => {
    if (event.target.closest?.("[data-definition]")) tip.hidden = true;
  };
  document.addEventListener("mouseover", show);
  document.addEventListener("focusin", show);
  document.addEventListener("mouseout", hide);
  document.addEventListener("focusout", hide);
}
