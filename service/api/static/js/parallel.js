// A sweep's parallel-coordinates plot: one vertical axis per searched option and a last one
// for the metric, one line per trial that has a value; the best trials are the darkest and
// pruned ones dashed, so which region of the space wins shows at a glance.

import { formatNumber, svg } from "./chart.js";

const WIDTH = 560;
const HEIGHT = 240;
const PAD = { left: 56, right: 56, top: 30, bottom: 18 };
// A few grid values get a label each; a drawn range gets its ends and middle.
const MAX_LABELS = 6;
const BEST = [37, 99, 235];
const WORST = [203, 213, 225];

const isNumber = (value) => typeof value === "number" && Number.isFinite(value);
const mix = (t) => `rgb(${BEST.map((b, i) => Math.round(b + (WORST[i] - b) * t)).join(",")})`;

// value -> 0 (bottom) .. 1 (top), and the labels to draw on the axis.
function scaleFor(values, entry) {
  if (!values.every(isNumber)) {
    const seen = [...new Set(values.map((v) => JSON.stringify(v)))];
    const at = (v) => (seen.length === 1 ? 0.5 : seen.indexOf(JSON.stringify(v)) / (seen.length - 1));
    return { at, labels: seen.map((s) => [JSON.parse(s), String(JSON.parse(s))]) };
  }
  let low = Math.min(...values);
  let high = Math.max(...values);
  // Rates and decays are searched over decades: a log axis keeps 1e-4..1e-3 from being a dot.
  const isLog = low > 0 && ((entry && entry.scale === "log") || high / low >= 30);
  const t = isLog ? Math.log10 : (v) => v;
  if (low === high) [low, high] = [low - 1, high + 1];
  const at = (v) => (t(v) - t(low)) / (t(high) - t(low));
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  const middle = isLog ? 10 ** ((t(low) + t(high)) / 2) : (low + high) / 2;
  const marks = distinct.length <= MAX_LABELS ? distinct : [Math.min(...values), middle, Math.max(...values)];
  return { at, labels: marks.map((v) => [v, formatNumber(v)]), isLog };
}

// sweep: a GET /sweeps/{id} body. Returns the <figure>, or null before any trial has a value.
export function parallelPlot(sweep) {
  const names = Object.keys(sweep.spec.space || {});
  const drawn = sweep.leaderboard.filter((t) => t.best_value !== null);
  if (!drawn.length) return null;
  const metric = `${sweep.metric} (${sweep.mode})`;
  const axes = names.map((name) => ({ name, scale: scaleFor(drawn.map((t) => t.params[name]), sweep.spec.space[name]) }));
  axes.push({ name: metric, scale: scaleFor(drawn.map((t) => t.best_value), null), isMetric: true });
  const x = (i) => PAD.left + (axes.length === 1 ? 0 : (i / (axes.length - 1)) * (WIDTH - PAD.left - PAD.right));
  const y = (fraction) => HEIGHT - PAD.bottom - fraction * (HEIGHT - PAD.top - PAD.bottom);
  const plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img" });
  plot.setAttribute("aria-label", `${names.join(", ")} against ${metric}`);
  axes.forEach((axis, i) => drawAxis(plot, axis, x(i), y));
  // The leaderboard is best first; each line goes beneath the ones before it, so the best lie on top.
  drawn.forEach((trial, rank) => {
    const points = axes.map((axis, i) => {
      const value = axis.isMetric ? trial.best_value : trial.params[axis.name];
      return `${x(i).toFixed(1)},${y(axis.scale.at(value)).toFixed(1)}`;
    });
    const line = svg("polyline", {
      points: points.join(" "),
      stroke: mix(drawn.length === 1 ? 0 : rank / (drawn.length - 1)),
      class: `trial status-line-${trial.status}`,
    });
    line.dataset.jobId = String(trial.job_id);
    line.dataset.status = trial.status;
    const params = names.map((n) => `${n}=${trial.params[n]}`).join(" ");
    line.append(svg("title", {}, `#${trial.job_id} ${params} → ${formatNumber(trial.best_value)} (${trial.status})`));
    plot.prepend(line);
  });
  const figure = document.createElement("figure");
  figure.className = "chart parallel";
  figure.dataset.chart = "parallel";
  const caption = document.createElement("figcaption");
  const waiting = sweep.leaderboard.length - drawn.length;
  caption.textContent = `Searched options against ${sweep.metric}${waiting ? ` · ${waiting} trials without a value yet` : ""}`;
  const legend = document.createElement("div");
  legend.className = "legend";
  legend.innerHTML = `<span><i style="background:${mix(0)}"></i>best</span><span><i style="background:${mix(1)}"></i>worst</span><span><i class="dashed"></i>pruned</span>`;
  figure.append(caption, plot, legend);
  return figure;
}

function drawAxis(plot, axis, x, y) {
  const group = svg("g", { class: "axis-group" });
  group.dataset.axis = axis.name;
  group.append(svg("line", { x1: x, x2: x, y1: y(0), y2: y(1), class: "axis" }));
  group.append(svg("text", { x, y: PAD.top - 12, class: `axis-name${axis.isMetric ? " metric" : ""}` }, axis.name));
  for (const [value, label] of axis.scale.labels) {
    const at = y(axis.scale.at(value));
    group.append(svg("line", { x1: x - 3, x2: x + 3, y1: at, y2: at, class: "axis" }));
    group.append(svg("text", { x: x - 6, y: at + 4, class: "tick y" }, label));
  }
  if (axis.scale.isLog) group.append(svg("text", { x, y: HEIGHT - 2, class: "tick x" }, "log"));
  plot.append(group);
}
