// "Fool it": on the Look inside panel, change the current image by at most eps (FGSM or PGD) toward the most likely
// wrong class, or a chosen one, and watch the prediction flip: the change (magnified), the adversarial image, the
// new probabilities and every layer's output for it. explore.js makes one AttackPanel and calls update() whenever
// the model has answered for a new input.
import { api, latestOnly } from "./api.js";
import { el } from "./dom.js";

const METHODS = { fgsm: "FGSM (one step)", pgd: "PGD-10 (L∞)", "pgd-l2": "PGD-10 (L2)" };

export class AttackPanel {
  // current(): {run, input} as explore.js holds them; layerRow(layer): its drawing of one layer's output
  constructor(current, layerRow) {
    this.current = current;
    this.layerRow = layerRow;
    this.method = el("select", { class: "attack-method", "aria-label": "attack method", onchange: () => this.send() },
      ...Object.entries(METHODS).map(([value, label]) => el("option", { value }, label)));
    this.eps = el("input", { type: "range", class: "attack-eps", min: 0, max: 0.3, step: 0.005, value: 0,
      "aria-label": "eps", oninput: () => this.send() });
    this.epsValue = el("span", { class: "attack-eps-value" }, "0");
    this.target = el("select", { class: "attack-target", "aria-label": "target class", onchange: () => this.send() });
    // own class names: explore.js's tests and styles look for .seen, .predicted and the like in the panel
    const shown = "width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #ccd";
    this.perturbation = el("img", { class: "attack-perturbation", style: shown, alt: "the change, magnified" });
    this.image = el("img", { class: "attack-image", style: shown, alt: "the adversarial image" });
    this.verdict = el("p", { class: "attack-verdict" }, "Move the slider to attack the current image.");
    this.bars = el("div", { class: "bars attack-bars" });
    this.layers = el("div", { class: "layer-rows attack-layers" });
    this.send = latestOnly(() => this.ask());
    this.card = el("div", { class: "card attack" }, el("h2", {}, "Fool it: an adversarial change"),
      el("div", { class: "row" }, el("label", {}, "method ", this.method), el("label", {}, "toward ", this.target)),
      el("label", {}, "eps ", this.eps, " ", this.epsValue, " (pixel units: 0.1 = a tenth of black to white)"),
      el("div", { class: "row attack-images" },
        el("figure", {}, this.perturbation, el("figcaption", { class: "caption" }, "change (magnified)")),
        el("figure", {}, this.image, el("figcaption", { class: "caption" }, "adversarial image"))),
      this.verdict, this.bars, el("details", {}, el("summary", {}, "every layer, for the adversarial image"),
        this.layers));
  }

  // A new input (or run): the target list follows the run's classes; the attack is redone at the slider's eps.
  update() {
    const { run } = this.current();
    if (this.classesOf !== run.name) {
      this.classesOf = run.name;
      this.target.replaceChildren(el("option", { value: "" }, "the most likely wrong class"),
        ...run.classes.map((name, k) => el("option", { value: k }, name)));
    }
    this.send();
  }

  async ask() {
    const { run, input } = this.current();
    const eps = Number(this.eps.value);
    this.epsValue.textContent = eps.toFixed(3);
    if (!input || eps === 0) {           // nothing to attack, or no change asked for: nothing to ask the server
      this.verdict.textContent = "Move the slider to attack the current image.";
      return;
    }
    const target = this.target.value === "" ? null : Number(this.target.value);
    const answer = await api("explore/attack", { run: run.name, ...input, method: this.method.value, eps, target });
    this.show(answer);
  }

  show(answer) {
    const { classes, scores, predicted, was, target } = answer;
    this.perturbation.src = answer.perturbation;
    this.image.src = answer.image;
    const change = answer.largest_change > 0 ? ` (largest pixel change ${answer.largest_change.toFixed(3)})` : "";
    this.verdict.replaceChildren(answer.flipped ? "Fooled: now " : "Still ",
      el("b", { class: "attack-class" }, classes[predicted]), ` (was ${classes[was]}; aimed at ${classes[target]})${change}`);
    this.verdict.classList.toggle("flipped", answer.flipped);
    const aim = (k) => { this.target.value = k; this.send(); };      // a bar clicked: push toward that class
    this.bars.replaceChildren(...classes.map((name, k) => el("button", {
      class: "bar" + (k === predicted ? " top" : "") + (k === target ? " chosen" : ""), "data-class": k,
      title: `push the image toward ${name}`, onclick: () => aim(k) },
      el("span", { class: "name" }, name),
      el("span", { class: "track" }, el("span", { class: "fill",
        style: `width: ${(100 * Math.min(1, scores[k])).toFixed(1)}%` })),
      el("span", { class: "value" }, scores[k].toFixed(3)))));
    this.layers.replaceChildren(...answer.layers.map(this.layerRow));
  }
}
