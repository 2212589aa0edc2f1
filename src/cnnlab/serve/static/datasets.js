// The datasets panel.
import { api, el } from "./app.js";

export async function init(section) {
  section.append(el("p", {}, "datasets: not built yet"));
}
