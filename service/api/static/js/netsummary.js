// A network's summary (POST /models/<m>/summary, GET /jobs/<id>/summary) as a table: per layer
// its type, output shape, parameters and FLOPs, then the totals. Shared by the layer editor
// and the job view.

import { bytesText, countText } from "./units.js";

export const shapeText = (shape) => (shape && shape.length ? shape.join("×") : "scalar");

function row(cells, tag = "td") {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement(tag);
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

// Rows are {layer, type, output_shape?, parameters?, flops?, layers?}: a summary's layers, or
// a typed layer list's entries before the server has sized them.
function layerRows(layers, depth = 0) {
  return layers.flatMap((layer) => {
    const sized = layer.output_shape !== undefined;
    const tr = row([
      layer.layer,
      `${"· ".repeat(depth)}${layer.type}`,
      sized ? shapeText(layer.output_shape) : "—",
      sized ? countText(layer.parameters) : "—",
      sized ? countText(layer.flops) : "—",
    ]);
    tr.dataset.layer = layer.layer;
    for (const td of [...tr.children].slice(2)) td.className = "num";
    return [tr, ...layerRows(layer.layers || [], depth + 1)];
  });
}

// The table for `layers` (and, given a summary, its totals); returns it.
export function summaryTable(layers, summary = null) {
  const table = document.createElement("table");
  table.className = "net-summary";
  const head = document.createElement("thead");
  head.append(row(["layer", "type", "output", "parameters", "FLOPs"], "th"));
  const body = document.createElement("tbody");
  body.append(...layerRows(layers));
  table.append(head, body);
  if (summary) {
    const foot = document.createElement("tfoot");
    const total = row([
      "total",
      `in ${shapeText(summary.input_shape)}`,
      shapeText(summary.output_shape),
      countText(summary.parameters),
      countText(summary.flops),
    ]);
    total.className = "net-total";
    const size = row([`checkpoint ${bytesText(summary.checkpoint_bytes)}`]);
    size.firstChild.colSpan = 5;
    foot.append(total, size);
    table.append(foot);
  }
  return table;
}

// The typed list's entries as rows, labelled as the server labels them.
export function listedLayers(layers, prefix = "layers") {
  return (Array.isArray(layers) ? layers : []).map((layer, index) => {
    const label = `${prefix}[${index}]`;
    const nested = layer && Array.isArray(layer.layers) ? listedLayers(layer.layers, `${label}.layers`) : [];
    return { layer: label, type: (layer && layer.type) || "?", layers: nested };
  });
}
