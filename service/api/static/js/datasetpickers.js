// Pickers for options that name an uploaded dataset or its columns, by option name: `dataset`
// and `test_dataset` choose from GET /datasets; `data` (sequential) from its built-in data sets
// and GET /datasets; `target` (one) and `features` (several) from the chosen `dataset`'s (or
// `data`'s) schema columns. Each overlays the option's own input, which keeps the
// value (so read, fill and errors work as for any option) and shows again when there is
// nothing to pick from (a server without /datasets, no dataset chosen).

import { listDatasets, readDataset, usableColumns } from "./datasets.js";

const DATASET_OPTIONS = ["dataset", "test_dataset", "data"];
const COLUMN_OPTIONS = ["target", "features"];
export const PICKED_OPTIONS = [...DATASET_OPTIONS, ...COLUMN_OPTIONS];
// Options whose chosen dataset the column pickers follow.
const SOURCE_OPTIONS = ["dataset", "data"];

function datasetLabel(dataset) {
  const schema = dataset.schema || {};
  const extent = schema.kind === "table" ? `${schema.rows} rows` : `${schema.images} images`;
  return `#${dataset.id} ${dataset.name} (${dataset.kind}, ${extent})`;
}

// The option's input mirrored by a select; returns the control with fill() kept in sync.
// `builtIn`: names offered before the uploads (`data`: a JSON option, "mnist" or an id).
export function withPicker(name, control, builtIn = []) {
  const input = control.element.querySelector("input, textarea");
  const select = document.createElement("select");
  select.className = "picker";
  select.dataset.picks = name;
  select.hidden = true;
  const isMany = name === "features";
  select.multiple = isMany;
  input.after(select);
  const ownId = input.id;

  // Shown with choices, the select takes the input's id (so the label points at it).
  function offer(choices, placeholder) {
    const current = readValue();
    select.replaceChildren(...(isMany || placeholder === null ? [] : [new Option(placeholder, "")]));
    for (const [value, text] of choices) select.append(new Option(text, value));
    for (const value of current) {
      if (value !== "" && ![...select.options].some((o) => o.value === value)) {
        select.append(new Option(`${value} (not in the list)`, value));
      }
    }
    if (isMany) select.size = Math.min(Math.max(select.options.length, 2), 8);
    const isShown = choices.length > 0 || current.some((v) => v !== "");
    select.hidden = !isShown;
    input.hidden = isShown;
    [select.id, input.id] = isShown ? [ownId, `${ownId}-typed`] : ["", ownId];
    mirror();
  }

  // The input's value as the select's option values.
  function readValue() {
    if (!isMany) return [input.value.trim()];
    try {
      const list = JSON.parse(input.value || "null");
      return Array.isArray(list) ? list.map(String) : [];
    } catch {
      return [];
    }
  }

  function mirror() {
    const values = readValue();
    for (const option of select.options) option.selected = values.includes(option.value);
    if (!isMany) select.value = values[0];
  }

  select.addEventListener("change", () => {
    const chosen = [...select.selectedOptions].map((o) => o.value);
    input.value = isMany ? (chosen.length ? JSON.stringify(chosen) : "") : select.value;
  });

  if (DATASET_OPTIONS.includes(name)) {
    const load = async () => {
      const page = await listDatasets().catch(() => null);
      if (!control.element.isConnected) return;
      const uploads = page ? page.data.map((d) => [String(d.id), datasetLabel(d)]) : [];
      const builtIns = builtIn.map((n) => [JSON.stringify(n), n]);
      const placeholder = { dataset: "choose a dataset…", test_dataset: "(none)", data: null }[name];
      offer([...builtIns, ...uploads], placeholder);
      if (SOURCE_OPTIONS.includes(name)) select.dispatchEvent(new Event("change", { bubbles: true }));
    };
    const reload = () => (control.element.isConnected ? load() : document.removeEventListener("datasets-changed", reload));
    document.addEventListener("datasets-changed", reload);
    load();
  } else {
    // The columns follow the `dataset` picker of the same form.
    let asked = 0;
    const follow = async (event) => {
      if (!control.element.isConnected) return document.removeEventListener("change", follow);
      const source = event.target;
      if (!SOURCE_OPTIONS.includes(source.dataset.picks) || source.closest("form") !== control.element.closest("form")) return;
      const mine = ++asked;
      let columns = [];
      // A built-in data set (`data`: "mnist") has no columns to pick.
      if (/^\d+$/.test(source.value)) columns = usableColumns(await readDataset(Number(source.value)).catch(() => null));
      if (mine === asked) offer(columns.map((c) => [c.name, `${c.name} (${c.type})`]), "choose a column…");
    };
    document.addEventListener("change", follow);
    if (isMany) {
      // The target is never a feature: its column is greyed out of the features list.
      const skipTarget = (event) => {
        if (!control.element.isConnected) return document.removeEventListener("change", skipTarget);
        const source = event.target;
        if (source.dataset.picks !== "target" || source.closest("form") !== control.element.closest("form")) return;
        for (const option of select.options) {
          option.disabled = option.value === source.value;
          if (option.disabled) option.selected = false;
        }
        select.dispatchEvent(new Event("change"));
      };
      document.addEventListener("change", skipTarget);
    }
  }

  const fill = control.fill;
  return {
    ...control,
    fill(value) {
      fill(value);
      mirror();
      if (SOURCE_OPTIONS.includes(name) && !select.hidden) select.dispatchEvent(new Event("change", { bubbles: true }));
    },
  };
}
