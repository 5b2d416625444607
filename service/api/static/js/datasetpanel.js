// The datasets panel: upload with a progress bar, the list (kind, size, rows or classes), one
// dataset's schema, delete. Hidden on a server without /datasets.

import { describeError } from "./api.js";
import { deleteDataset, listDatasets, readDataset, uploadDataset } from "./datasets.js";
import { bytesText } from "./units.js";

function extentText(dataset) {
  const schema = dataset.schema || {};
  if (schema.kind === "table") return `${schema.rows} rows × ${(schema.columns || []).length} columns`;
  if (schema.kind === "images") return `${schema.images} images, ${(schema.classes || []).length} classes`;
  return "";
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

function table(className, headers, rows) {
  const element = document.createElement("table");
  element.className = className;
  element.createTHead().insertRow().append(...headers.map((h) => cell("th", h)));
  const body = element.createTBody();
  for (const values of rows) body.insertRow().append(...values.map((v) => cell("td", v)));
  return element;
}

function schemaView(dataset) {
  const schema = dataset.schema || {};
  if (schema.kind === "table") {
    const rows = (schema.columns || []).map((c) => [
      c.name,
      c.type,
      String(c.missing),
      c.distinct_capped ? `${c.distinct - 1}+` : String(c.distinct),
      (c.examples || []).map((e) => JSON.stringify(e)).join(", "),
    ]);
    const view = table("dataset-schema", ["column", "type", "missing", "distinct", "examples"], rows);
    for (const [i, column] of (schema.columns || []).entries()) view.tBodies[0].rows[i].dataset.column = column.name;
    return [view];
  }
  if (schema.kind === "images") {
    const classes = table("dataset-schema", ["class", "images"], (schema.classes || []).map((c) => [c.name, String(c.count)]));
    const sizes = (schema.sizes || []).slice(0, 5).map(([w, h]) => `${w}×${h}`).join(", ");
    const splits = Object.keys(schema.splits || {}).join(", ") || "none";
    return [classes, cell("p", `sizes ${sizes} · modes ${(schema.modes || []).join(", ")} · splits ${splits}`)];
  }
  return [];
}

export async function startDatasetPanel(root) {
  const list = root.querySelector("#dataset-list tbody");
  const detail = root.querySelector(".dataset-detail");
  const form = root.querySelector("#dataset-upload");
  const progress = form.querySelector("progress");
  const message = form.querySelector(".upload-message");

  async function show(id) {
    detail.replaceChildren(cell("p", "loading…"));
    try {
      const dataset = await readDataset(id);
      const title = cell("h3", `#${dataset.id} ${dataset.name}`);
      const facts = cell("p", `${dataset.kind} · ${dataset.format} · ${bytesText(dataset.bytes)} · ${extentText(dataset)} · sha256 ${dataset.sha256.slice(0, 12)}…`);
      facts.className = "summary";
      detail.replaceChildren(title, facts, ...schemaView(dataset));
      detail.dataset.datasetId = String(id);
      for (const tr of list.rows) tr.classList.toggle("selected", tr.dataset.datasetId === String(id));
    } catch (error) {
      detail.replaceChildren(cell("p", describeError(error)));
    }
  }

  async function remove(dataset) {
    if (!confirm(`Delete dataset #${dataset.id} (${dataset.name})?`)) return;
    try {
      await deleteDataset(dataset.id);
      if (detail.dataset.datasetId === String(dataset.id)) detail.replaceChildren();
      message.textContent = `deleted dataset #${dataset.id}`;
    } catch (error) {
      message.textContent = describeError(error);
    }
  }

  async function refresh() {
    let page;
    try {
      page = await listDatasets();
    } catch (error) {
      root.hidden = false;
      message.textContent = describeError(error);
      return;
    }
    root.hidden = page === null; // no /datasets on this server
    if (page === null) return;
    list.replaceChildren(
      ...page.data.map((dataset) => {
        const tr = document.createElement("tr");
        tr.dataset.datasetId = String(dataset.id);
        tr.append(
          ...[`#${dataset.id}`, dataset.name, dataset.kind, bytesText(dataset.bytes), extentText(dataset)].map((t) => cell("td", t)),
        );
        const remover = cell("button", "Delete");
        remover.type = "button";
        remover.className = "dataset-delete";
        remover.addEventListener("click", (event) => {
          event.stopPropagation();
          remove(dataset);
        });
        const actions = cell("td", "");
        actions.append(remover);
        tr.append(actions);
        tr.addEventListener("click", () => show(dataset.id));
        return tr;
      }),
    );
    if (!page.data.length) {
      const empty = list.insertRow().insertCell();
      empty.colSpan = 6;
      empty.textContent = "no datasets yet: upload a CSV, TSV or Parquet file, or an image-folder archive";
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) {
      message.textContent = "choose a file first";
      return;
    }
    progress.hidden = false;
    progress.value = 0;
    message.textContent = `uploading ${file.name}…`;
    try {
      const dataset = await uploadDataset(file, form.elements.name.value.trim(), (share) => (progress.value = share));
      progress.value = 1;
      message.textContent = `dataset #${dataset.id} ${dataset.name}: ${extentText(dataset)}`;
      form.reset();
      await show(dataset.id);
    } catch (error) {
      message.textContent = describeError(error);
    } finally {
      progress.hidden = true;
    }
  });
  document.addEventListener("datasets-changed", refresh);
  await refresh();
}
