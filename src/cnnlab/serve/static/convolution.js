// The convolution panel.
import { api, el } from "./app.js";

export async function init(section) {
  section.append(el("p", {}, "convolution: not built yet"));
}
