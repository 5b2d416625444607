// The new-sweep form on #sweeps: a model, fixed params (JSON), a search space of grid lists or
// random ranges per option, the metric and trials, optional successive halving -> POST /sweeps.

import { describeError, request } from "./api.js";
import { kindOf, resolve } from "./fieldcontrols.js";

// Options a search can vary: free JSON (data, layers, schedules) is better fixed.
const SEARCHABLE = new Set(["integer", "number", "enum", "boolean"]);
const KINDS = [
  ["grid", "grid: each of"],
  ["choice", "random: one of"],
  ["range", "random in [low, high]"],
  ["log", "random, log scale"],
];
const FIRST_AXIS = { name: "lr", kind: "grid", text: "0.01, 0.1" };

// "0.01, 0.1" -> [0.01, 0.1]; "sgd, adam" -> ["sgd", "adam"]; "true" -> true.
function parseValues(text) {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      try {
        return JSON.parse(part);
      } catch {
        return part;
      }
    });
}

function spaceEntry(name, kind, text) {
  const values = parseValues(text);
  if (kind === "grid") return values;
  if (kind === "choice") return { values };
  if (values.length !== 2 || !values.every((v) => typeof v === "number")) {
    throw new Error(`${name}: a range is two numbers, low, high`);
  }
  return { low: values[0], high: values[1], scale: kind === "log" ? "log" : "linear" };
}

// name -> the values a grid would try by default (every choice of an enum or a boolean).
function searchable(schema) {
  const options = new Map();
  for (const [name, property] of Object.entries(schema.properties || {})) {
    const { field } = resolve(property, schema);
    const kind = kindOf(field);
    if (!SEARCHABLE.has(kind)) continue;
    const all = kind === "enum" ? field.enum : kind === "boolean" ? [true, false] : null;
    options.set(name, all ? all.map((v) => JSON.stringify(v).replaceAll('"', "")).join(", ") : "");
  }
  return options;
}

function axisRow(options, { name, kind, text }) {
  const row = document.createElement("div");
  row.className = "space-row";
  const option = document.createElement("select");
  option.name = "axis-name";
  option.setAttribute("aria-label", "option");
  for (const candidate of options.keys()) option.append(new Option(candidate, candidate));
  option.value = options.has(name) ? name : options.keys().next().value;
  const how = document.createElement("select");
  how.name = "axis-kind";
  how.setAttribute("aria-label", "how");
  for (const [value, label] of KINDS) how.append(new Option(label, value));
  how.value = kind;
  const values = document.createElement("input");
  values.name = "axis-values";
  values.setAttribute("aria-label", "values");
  values.value = text;
  const placeholder = () => {
    values.placeholder = how.value === "range" || how.value === "log" ? "low, high" : "a, b, c";
  };
  placeholder();
  how.addEventListener("change", placeholder);
  option.addEventListener("change", () => {
    values.value = options.get(option.value);
  });
  const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "×", className: "remove-axis" });
  remove.setAttribute("aria-label", "remove option");
  remove.addEventListener("click", () => row.remove());
  row.append(option, how, values, remove);
  return row;
}

function readBody(form) {
  const field = (name) => form.elements[name];
  const space = {};
  for (const row of form.querySelectorAll(".space-row")) {
    const name = row.querySelector("[name=axis-name]").value;
    space[name] = spaceEntry(name, row.querySelector("[name=axis-kind]").value, row.querySelector("[name=axis-values]").value);
  }
  const text = field("params").value.trim();
  let params;
  try {
    params = text ? JSON.parse(text) : {};
  } catch (error) {
    throw new Error(`fixed params: not valid JSON (${error.message})`);
  }
  const body = { model: field("model").value, params, space, metric: field("metric").value.trim(), trials: Number(field("trials").value) };
  if (field("mode").value) body.mode = field("mode").value;
  if (field("halving").checked) body.halving = { min_epochs: Number(field("min_epochs").value), eta: Number(field("eta").value) };
  return body;
}

// Fills the form's model list once; a started sweep opens its leaderboard.
export async function startSweepForm(form) {
  const error = form.querySelector(".form-error");
  const rows = form.querySelector(".space-rows");
  let models;
  try {
    models = new Map((await request("/models")).data.map((m) => [m.name, m]));
  } catch (failure) {
    error.textContent = describeError(failure);
    return;
  }
  const select = form.elements.model;
  for (const name of models.keys()) select.append(new Option(name, name));
  let options;
  const showModel = () => {
    options = searchable(models.get(select.value).options_schema);
    rows.replaceChildren(axisRow(options, FIRST_AXIS));
  };
  select.addEventListener("change", showModel);
  showModel();
  form.querySelector(".add-axis").addEventListener("click", () => {
    const taken = new Set([...rows.querySelectorAll("[name=axis-name]")].map((s) => s.value));
    const name = [...options.keys()].find((n) => !taken.has(n));
    rows.append(axisRow(options, { name, kind: "grid", text: options.get(name) || "" }));
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const sweep = await request("/sweeps", { method: "POST", body: readBody(form) });
      location.hash = `#sweep/${sweep.id}`;
    } catch (failure) {
      error.textContent = describeError(failure);
    }
  });
}
