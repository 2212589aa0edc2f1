// The explore panel.
import { api, el } from "./app.js";

export async function init(section) {
  section.append(el("p", {}, "explore: not built yet"));
}
