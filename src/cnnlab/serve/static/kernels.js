// The kernels panel.
import { api, el } from "./app.js";

export async function init(section) {
  section.append(el("p", {}, "kernels: not built yet"));
}
