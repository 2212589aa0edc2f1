// The monitor panel.
import { api, el } from "./app.js";

export async function init(section) {
  section.append(el("p", {}, "monitor: not built yet"));
}
