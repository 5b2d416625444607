// One option of the job form as a control built from its JSON schema: an input for a scalar, a
// sub-form for an object option (early stopping, watch), a variant picker for a tagged union
// (scheduler). Every control has element, read(), fill(value), showError(loc, msg), clear().

import { PICKED_OPTIONS, withPicker } from "./datasetpickers.js";

// The field's own schema: "X or null" becomes X marked nullable; $refs are looked up.
export function resolve(schema, root) {
  let field = schema;
  let isNullable = false;
  if (Array.isArray(field.anyOf)) {
    const others = field.anyOf.filter((s) => s.type !== "null");
    isNullable = others.length < field.anyOf.length;
    field = others.length === 1 ? { ...field, ...others[0], anyOf: undefined } : field;
  }
  if (field.$ref) {
    const name = field.$ref.split("/").pop();
    field = { ...field, ...((root.$defs || {})[name] || {}), $ref: undefined };
  }
  return { field, isNullable };
}

export function kindOf(field) {
  if (field.const !== undefined) return "const";
  if (Array.isArray(field.enum)) return "enum";
  if (Array.isArray(field.oneOf) && field.discriminator) return "union";
  if (field.type === "object" && field.properties) return "object";
  if (["integer", "number", "boolean", "string"].includes(field.type)) return field.type;
  return "json";
}

function titleOf(name, property) {
  // Not field.title: for a $ref that is the referenced class's name.
  return property.title || name[0].toUpperCase() + name.slice(1).replaceAll("_", " ");
}

function hint(field, isNullable) {
  const parts = [];
  if (field.minimum !== undefined) parts.push(`≥ ${field.minimum}`);
  if (field.exclusiveMinimum !== undefined) parts.push(`> ${field.exclusiveMinimum}`);
  if (field.maximum !== undefined) parts.push(`≤ ${field.maximum}`);
  if (field.exclusiveMaximum !== undefined) parts.push(`< ${field.exclusiveMaximum}`);
  if (isNullable) parts.push("empty: none");
  return parts.join(", ");
}

function inputFor(kind, field, isNullable) {
  let input;
  if (kind === "enum") {
    input = document.createElement("select");
    if (isNullable) input.append(new Option("(automatic)", ""));
    for (const option of field.enum) input.append(new Option(String(option), String(option)));
  } else if (kind === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
  } else if (kind === "json") {
    input = document.createElement("textarea");
    input.rows = 2;
    input.placeholder = "JSON; empty for none";
  } else {
    input = document.createElement("input");
    input.type = kind === "string" || kind === "const" ? "text" : "number";
    if (kind === "integer") input.step = "1";
    if (kind === "number") input.step = "any";
    for (const bound of ["minimum", "maximum"]) {
      if (field[bound] !== undefined) input[bound.slice(0, 3)] = field[bound];
    }
    input.disabled = kind === "const";
  }
  return input;
}

function setInput(kind, input, value) {
  if (kind === "boolean") input.checked = Boolean(value);
  else if (kind === "json") input.value = value === null || value === undefined ? "" : JSON.stringify(value);
  else input.value = value === null || value === undefined ? "" : String(value);
}

function readInput(kind, input, isNullable) {
  if (kind === "boolean") return input.checked;
  const text = input.value.trim();
  if (text === "") return isNullable || kind === "json" ? null : undefined;
  if (kind === "integer" || kind === "number") return Number(text);
  if (kind === "json") return JSON.parse(text);
  return text;
}

function errorSpan() {
  const error = document.createElement("span");
  error.className = "field-error";
  return error;
}

function scalarControl(name, property, field, isNullable, id, isRequired) {
  const kind = kindOf(field);
  const row = document.createElement("div");
  row.className = `field field-${kind}`;
  row.dataset.field = name;
  const label = document.createElement("label");
  label.textContent = titleOf(name, property);
  const input = inputFor(kind, field, isNullable);
  setInput(kind, input, property.default);
  if (isRequired && property.default === undefined) input.placeholder = "required";
  input.name = name;
  label.htmlFor = input.id = id;
  const help = document.createElement("small");
  // A nullable enum's empty choice reads "(automatic)" already.
  help.textContent = [property.description, hint(field, isNullable && kind !== "enum")].filter(Boolean).join(" ");
  const error = errorSpan();
  row.append(label, input, help, error);
  return {
    element: row,
    isConst: kind === "const",
    read() {
      try {
        return readInput(kind, input, isNullable);
      } catch (parseError) {
        error.textContent = `not valid JSON: ${parseError.message}`;
        throw parseError;
      }
    },
    fill: (value) => setInput(kind, input, value),
    showError: (loc, msg) => {
      error.textContent = msg;
      return true;
    },
    clear: () => (error.textContent = ""),
  };
}

// The object's own options as child controls, skipping `omit` (a union's tag).
function childControls(field, root, id, omit = null) {
  const children = new Map();
  for (const [name, property] of Object.entries(field.properties || {})) {
    if (name === omit) continue;
    const isRequired = (field.required || []).includes(name);
    children.set(name, controlFor(name, property, root, `${id}-${name}`, isRequired));
  }
  return children;
}

function readChildren(children) {
  const value = {};
  for (const [name, child] of children) {
    const read = child.read();
    if (read !== undefined) value[name] = read;
  }
  return value;
}

function showChildError(children, own, loc, msg) {
  const child = children.get(loc[0]);
  if (child) return child.showError(loc.slice(1), msg);
  own.textContent = msg;
  return true;
}

// A fieldset whose legend is the option's name; "X or null" gets a checkbox that enables it.
function subform(name, property, field, className) {
  const fieldset = document.createElement("fieldset");
  fieldset.className = `subform ${className}`;
  fieldset.dataset.field = name;
  const legend = document.createElement("legend");
  const body = document.createElement("div");
  body.className = "subfields";
  const help = document.createElement("small");
  help.textContent = property.description || field.description || "";
  const error = errorSpan();
  fieldset.append(legend, body, help, error);
  return { fieldset, legend, body, error };
}

function objectControl(name, property, field, isNullable, root, id) {
  const { fieldset, legend, body, error } = subform(name, property, field, "subform-object");
  const children = childControls(field, root, id);
  body.append(...[...children.values()].map((c) => c.element));
  const enabled = document.createElement("input");
  enabled.type = "checkbox";
  enabled.id = id;
  enabled.name = name;
  const title = document.createElement("label");
  title.htmlFor = id;
  title.textContent = titleOf(name, property);
  legend.append(...(isNullable ? [enabled, title] : [title]));
  enabled.checked = !isNullable || (property.default !== null && property.default !== undefined);
  const show = () => (body.hidden = !enabled.checked);
  enabled.addEventListener("change", show);
  show();
  return {
    element: fieldset,
    read: () => (enabled.checked ? readChildren(children) : null),
    fill(value) {
      enabled.checked = !isNullable || (value !== null && value !== undefined);
      for (const [key, child] of children) if (value && key in value) child.fill(value[key]);
      show();
    },
    showError: (loc, msg) => showChildError(children, error, loc, msg),
    clear() {
      error.textContent = "";
      for (const child of children.values()) child.clear();
    },
  };
}

function unionControl(name, property, field, isNullable, root, id) {
  const { fieldset, legend, body, error } = subform(name, property, field, "subform-union");
  const tag = field.discriminator.propertyName;
  const variants = new Map();
  for (const option of field.oneOf) {
    const { field: variant } = resolve(option, root);
    const value = variant.properties[tag].const;
    const children = childControls(variant, root, `${id}-${value}`, tag);
    const group = document.createElement("div");
    group.dataset.variant = value;
    group.append(...[...children.values()].map((c) => c.element));
    variants.set(value, { children, group });
    body.append(group);
  }
  const picker = document.createElement("select");
  picker.id = id;
  picker.name = name;
  if (isNullable) picker.append(new Option("none", ""));
  for (const value of variants.keys()) picker.append(new Option(value, value));
  const title = document.createElement("label");
  title.htmlFor = id;
  title.textContent = titleOf(name, property);
  legend.append(title, picker);
  const show = () => {
    for (const [value, { group }] of variants) group.hidden = value !== picker.value;
  };
  picker.addEventListener("change", show);
  show();
  return {
    element: fieldset,
    read() {
      const chosen = variants.get(picker.value);
      return chosen ? { [tag]: picker.value, ...readChildren(chosen.children) } : null;
    },
    fill(value) {
      picker.value = value && variants.has(value[tag]) ? value[tag] : "";
      const chosen = variants.get(picker.value);
      for (const [key, child] of chosen ? chosen.children : []) if (key in value) child.fill(value[key]);
      show();
    },
    // pydantic names the variant in the loc: ["step", "step_size"].
    showError(loc, msg) {
      const chosen = variants.get(loc[0]);
      return chosen ? showChildError(chosen.children, error, loc.slice(1), msg) : showChildError(new Map(), error, loc, msg);
    },
    clear() {
      error.textContent = "";
      for (const { children } of variants.values()) for (const child of children.values()) child.clear();
    },
  };
}

export function controlFor(name, property, root, id, isRequired = false) {
  const { field, isNullable } = resolve(property, root);
  const kind = kindOf(field);
  if (kind === "object") return objectControl(name, property, field, isNullable, root, id);
  if (kind === "union") return unionControl(name, property, field, isNullable, root, id);
  const control = scalarControl(name, property, field, isNullable, id, isRequired);
  if (!PICKED_OPTIONS.includes(name) || control.isConst) return control;
  // `data` is a built-in name (the anyOf's enum) or an uploaded dataset's id.
  const builtIn = (field.anyOf || []).flatMap((s) => (Array.isArray(s.enum) ? s.enum : []));
  return name !== "data" || builtIn.length ? withPicker(name, control, builtIn) : control;
}
