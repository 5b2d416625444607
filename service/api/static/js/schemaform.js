// A job form generated from a model's pydantic JSON schema (GET /models options_schema): the
// essentials first, every other option folded under "Advanced options".

import { controlFor } from "./fieldcontrols.js";

// What most runs change; required options (a sequential model's layers) join them.
const ESSENTIALS = ["epochs", "optimizer", "lr", "batch_size"];

// Renders the options into container; returns {read(), showErrors(detail), clear(), fill()}.
// `essentials` adds option names to show unfolded (a layer list and the data it reads).
export function renderForm(container, schema, { essentials: shown = [] } = {}) {
  const controls = new Map();
  const essentials = document.createElement("div");
  essentials.className = "essentials";
  const advanced = document.createElement("details");
  advanced.className = "advanced";
  const summary = document.createElement("summary");
  summary.textContent = "Advanced options";
  const folded = document.createElement("div");
  folded.className = "advanced-fields";
  advanced.append(summary, folded);
  const required = schema.required || [];
  for (const [name, property] of Object.entries(schema.properties || {})) {
    // The server fills these (a job's dataset lineage); a client never sends them.
    if (property.readOnly) continue;
    const isEssential = ESSENTIALS.includes(name) || shown.includes(name) || required.includes(name);
    const control = controlFor(name, property, schema, `option-${name}`, required.includes(name));
    (isEssential ? essentials : folded).append(control.element);
    controls.set(name, { control, initial: control.read(), isEssential });
  }
  container.replaceChildren(essentials, ...(folded.children.length ? [advanced] : []));

  // A value set or an error shown under the fold opens it, so nothing changes out of sight.
  const reveal = (name) => {
    if (!controls.get(name).isEssential) advanced.open = true;
  };

  // Only options changed from their defaults are sent, so the server's own defaulting
  // (momentum follows the optimizer, say) still applies to the rest.
  function read() {
    const params = {};
    for (const [name, { control, initial }] of controls) {
      if (control.isConst) continue;
      let value;
      try {
        value = control.read();
      } catch (parseError) {
        reveal(name);
        throw parseError;
      }
      if (value !== undefined && JSON.stringify(value) !== JSON.stringify(initial)) {
        params[name] = value;
      }
    }
    return params;
  }

  function clear() {
    for (const { control } of controls.values()) control.clear();
  }

  // 422 details name fields as loc = ["body", "params", <field>, ...]; the rest are returned.
  function showErrors(detail) {
    clear();
    const unplaced = [];
    for (const item of Array.isArray(detail) ? detail : []) {
      const loc = item.loc || [];
      const entry = loc[1] === "params" ? controls.get(loc[2]) : undefined;
      if (!entry) {
        unplaced.push(item);
        continue;
      }
      entry.control.showError(loc.slice(3), item.msg);
      reveal(loc[2]);
    }
    return unplaced;
  }

  // Clone-and-edit: every option set to the given job's value.
  function fill(params) {
    for (const [name, { control, initial }] of controls) {
      if (control.isConst || !(name in params)) continue;
      control.fill(params[name]);
      if (JSON.stringify(control.read()) !== JSON.stringify(initial)) reveal(name);
    }
  }

  return { read, showErrors, clear, fill };
}
