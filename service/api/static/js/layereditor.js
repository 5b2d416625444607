// The layer-list editor of a model whose options have `layers` (sequential): the list as JSON,
// one layer a line; a preset picker (GET /models/<m>/presets); and the live summary (POST
// /models/<m>/summary, debounced) with a 422 shown at the layer it names.

import { ApiError, describeError, request } from "./api.js";
import { listedLayers, summaryTable } from "./netsummary.js";

const DEBOUNCE_MS = 350;
// "layers[5] (linear): expects ..." names the layer; nested: "layers[2].layers[0] (relu)".
const NAMED_LAYER = /(layers\[\d+\](?:\.layers\[\d+\])*) \(\w+\)/;

export function hasLayerList(schema) {
  const layers = (schema.properties || {}).layers;
  return Boolean(layers && layers.type === "array");
}

// One layer a line, so the line of a layer is its index (plus one).
export function formatLayers(layers) {
  if (!Array.isArray(layers)) return JSON.stringify(layers);
  return `[\n${layers.map((layer) => `  ${JSON.stringify(layer)}`).join(",\n")}\n]`;
}

// The layer an error is about, as the summary labels it ("layers[2].layers[0]"), or null.
// loc: [("body"), ("params"), "layers", 2, "residual", "layers", 0, "linear", "out_features"].
export function layerOfError(item) {
  const loc = (item.loc || []).filter((part, i) => !(i < 2 && (part === "body" || part === "params")));
  if (loc[0] === "layers" && Number.isInteger(loc[1])) {
    let key = `layers[${loc[1]}]`;
    for (let i = 2; loc[i + 1] === "layers" && Number.isInteger(loc[i + 2]); i += 3) {
      key += `.layers[${loc[i + 2]}]`;
    }
    return key;
  }
  const named = NAMED_LAYER.exec(item.msg || "");
  return loc[0] === "layers" && named ? named[1] : null;
}

const plainMessage = (msg) => String(msg || "").replace(/^Value error, /, "");

// Attaches the editor to a rendered form whose `layers` control is in `fields`; returns
// {complete(params), showErrors(detail), refresh()}.
export function attachLayerEditor(fields, model, form) {
  const field = fields.querySelector(".field[data-field=layers]");
  const textarea = field.querySelector("textarea");
  textarea.classList.add("layer-list");
  textarea.spellcheck = false;
  // The schema has no default for a list made by a factory; the model's defaults have it.
  if (!textarea.value.trim() && model.defaults && model.defaults.layers) {
    textarea.value = JSON.stringify(model.defaults.layers);
  }
  const editor = document.createElement("div");
  editor.className = "layer-editor";
  const presets = document.createElement("select");
  presets.id = "layer-presets";
  presets.append(new Option("start from a preset…", ""));
  const presetRow = document.createElement("div");
  presetRow.className = "field preset-field";
  presetRow.hidden = true;
  const presetLabel = document.createElement("label");
  presetLabel.htmlFor = presets.id;
  presetLabel.textContent = "Preset";
  presetRow.append(presetLabel, presets);
  const status = document.createElement("p");
  status.className = "net-status summary";
  status.setAttribute("aria-live", "polite");
  const table = document.createElement("div");
  table.className = "net-table";
  editor.append(status, table);
  field.before(presetRow);
  field.after(editor);

  // Not on blur: a click on Submit blurs the list first, and a reflow then would move the button.
  const format = () => {
    try {
      textarea.value = formatLayers(JSON.parse(textarea.value));
    } catch {
      // Left as typed; the summary says it is not JSON.
    }
    textarea.rows = Math.min(Math.max(textarea.value.split("\n").length + 1, 6), 24);
  };

  let presetList = [];
  request(`/models/${model.name}/presets`)
    .then((answer) => {
      presetList = answer.data;
      for (const preset of presetList) presets.append(new Option(`${preset.name}: ${preset.summary}`, preset.name));
      presetRow.hidden = presetList.length === 0;
    })
    .catch(() => {}); // No presets: no picker.
  presets.addEventListener("change", () => {
    const preset = presetList.find((p) => p.name === presets.value);
    if (!preset) return;
    form.fill(preset.params);
    refresh();
    presets.value = "";
  });

  // What the editor shows is what is sent, even when it equals the default list.
  function complete(params) {
    return { ...params, layers: JSON.parse(textarea.value) };
  }

  let typed = [];
  function showErrors(detail) {
    const items = Array.isArray(detail) ? detail : [];
    table.replaceChildren(summaryTable(listedLayers(typed)));
    const elsewhere = [];
    let first = null;
    for (const item of items) {
      const key = layerOfError(item);
      const tr = key && table.querySelector(`tr[data-layer="${CSS.escape(key)}"]`);
      if (!tr) {
        elsewhere.push(item);
        continue;
      }
      tr.classList.add("layer-error");
      const note = document.createElement("tr");
      note.className = "layer-message";
      const cell = document.createElement("td");
      cell.colSpan = 5;
      cell.textContent = plainMessage(item.msg);
      note.append(cell);
      tr.after(note);
      first = first || tr;
    }
    status.textContent = elsewhere.length ? plainMessage(describeError(new ApiError(422, elsewhere))) : "";
    status.classList.add("error");
    if (first) first.scrollIntoView({ block: "nearest" });
  }

  let timer = null;
  let asked = 0;
  async function summarise() {
    const mine = ++asked;
    let params;
    try {
      params = complete(form.read());
    } catch (parseError) {
      status.textContent = `not valid JSON yet (${parseError.message}): the summary waits for a complete list`;
      status.classList.add("error");
      return;
    }
    typed = params.layers;
    status.classList.remove("error");
    status.textContent = "summarising…";
    try {
      const summary = await request(`/models/${model.name}/summary`, { method: "POST", body: params });
      if (mine !== asked) return;
      table.replaceChildren(summaryTable(summary.layers, summary));
      status.textContent = `${summary.parameters.toLocaleString("en-US")} parameters`;
      editor.dataset.state = "ok";
    } catch (error) {
      if (mine !== asked) return;
      editor.dataset.state = "error";
      if (error instanceof ApiError && error.status === 422) showErrors(error.detail);
      else {
        status.textContent = describeError(error);
        status.classList.add("error");
      }
    }
  }

  function refresh() {
    format();
    clearTimeout(timer);
    summarise();
  }
  const schedule = (event) => {
    if (event.target === presets) return;
    clearTimeout(timer);
    editor.dataset.state = "pending";
    timer = setTimeout(summarise, DEBOUNCE_MS);
  };
  fields.addEventListener("input", schedule);
  fields.addEventListener("change", schedule);
  refresh();
  return { complete, showErrors, refresh };
}
