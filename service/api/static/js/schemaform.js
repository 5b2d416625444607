// A job form generated from a model's pydantic JSON schema (GET /models options_schema).

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
  if (["integer", "number", "boolean", "string"].includes(field.type)) return field.type;
  return "json";
}

function inputFor(kind, field, value) {
  let input;
  if (kind === "enum") {
    input = document.createElement("select");
    for (const option of field.enum) input.append(new Option(String(option), String(option)));
    input.value = String(value);
  } else if (kind === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = Boolean(value);
  } else if (kind === "json") {
    input = document.createElement("textarea");
    input.rows = 2;
    input.placeholder = "JSON; empty for none";
    input.value = value === null || value === undefined ? "" : JSON.stringify(value);
  } else {
    input = document.createElement("input");
    input.type = kind === "string" || kind === "const" ? "text" : "number";
    if (kind === "integer") input.step = "1";
    if (kind === "number") input.step = "any";
    for (const bound of ["minimum", "maximum"]) {
      if (field[bound] !== undefined) input[bound.slice(0, 3)] = field[bound];
    }
    input.value = value === null || value === undefined ? "" : String(value);
    input.disabled = kind === "const";
  }
  return input;
}

function readValue(kind, input, isNullable) {
  if (kind === "boolean") return input.checked;
  const text = input.value.trim();
  if (text === "") return isNullable || kind === "json" ? null : undefined;
  if (kind === "integer" || kind === "number") return Number(text);
  if (kind === "json") return JSON.parse(text);
  return text;
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

// Renders one row per option into container; returns {read(), showErrors(detail), clear()}.
export function renderForm(container, schema) {
  container.replaceChildren();
  const fields = new Map();
  for (const [name, property] of Object.entries(schema.properties || {})) {
    const { field, isNullable } = resolve(property, schema);
    const kind = kindOf(field);
    const row = document.createElement("div");
    row.className = `field field-${kind}`;
    row.dataset.field = name;
    const label = document.createElement("label");
    // Not field.title: for a $ref that is the referenced class's name.
    label.textContent = property.title || name[0].toUpperCase() + name.slice(1).replaceAll("_", " ");
    const input = inputFor(kind, field, property.default);
    input.name = name;
    label.htmlFor = input.id = `option-${name}`;
    const help = document.createElement("small");
    help.textContent = [property.description, hint(field, isNullable)].filter(Boolean).join(" ");
    const error = document.createElement("span");
    error.className = "field-error";
    row.append(label, input, help, error);
    container.append(row);
    fields.set(name, { kind, input, isNullable, error, initial: readValue(kind, input, isNullable) });
  }

  // Only options changed from their defaults are sent, so the server's own defaulting
  // (momentum follows the optimizer, say) still applies to the rest.
  function read() {
    const params = {};
    for (const [name, { kind, input, isNullable, initial, error }] of fields) {
      if (kind === "const") continue;
      let value;
      try {
        value = readValue(kind, input, isNullable);
      } catch (parseError) {
        error.textContent = `not valid JSON: ${parseError.message}`;
        throw parseError;
      }
      if (value !== undefined && JSON.stringify(value) !== JSON.stringify(initial)) {
        params[name] = value;
      }
    }
    return params;
  }

  function clear() {
    for (const { error } of fields.values()) error.textContent = "";
  }

  // 422 details name fields as loc = ["body", "params", <field>, ...]; the rest are returned.
  function showErrors(detail) {
    clear();
    const unplaced = [];
    for (const item of Array.isArray(detail) ? detail : []) {
      const loc = item.loc || [];
      const field = loc[1] === "params" ? fields.get(loc[2]) : undefined;
      if (field) field.error.textContent = item.msg;
      else unplaced.push(item);
    }
    return unplaced;
  }

  // Clone-and-edit: every option set to the given job's value.
  function fill(params) {
    for (const [name, { kind, input }] of fields) {
      if (kind === "const" || !(name in params)) continue;
      const value = params[name];
      if (kind === "boolean") input.checked = Boolean(value);
      else if (kind === "json") input.value = value === null ? "" : JSON.stringify(value);
      else input.value = value === null ? "" : String(value);
    }
  }

  return { read, showErrors, clear, fill };
}
