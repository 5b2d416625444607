// A small SVG line chart: named series of (x, y) points, redrawn at most once a frame.

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 220;
const PAD = { left: 52, right: 20, top: 14, bottom: 34 };
// Long runs have 100,000 epochs; more vertices than pixels only costs time.
const MAX_DRAWN = 1200;
const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2"];

export function svg(name, attributes = {}, text = "") {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text) element.textContent = text;
  return element;
}

export function formatNumber(value) {
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6 || magnitude < 1e-3) return value.toExponential(1);
  if (magnitude >= 1e4) return `${Number((value / 1000).toPrecision(3))}k`;
  return Number(value.toPrecision(3)).toString();
}

// About `count` round values (multiples of 1, 2 or 5 x 10^k) between low and high.
function ticks(low, high, count, minStep = 0) {
  const rough = Math.max((high - low) / count, minStep);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) || 10 * power;
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const values = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) {
    values.push([v, Math.abs(v) >= 1e4 ? formatNumber(v) : v.toFixed(decimals)]);
  }
  return values;
}

function thin(points) {
  if (points.length <= MAX_DRAWN) return points;
  const step = points.length / MAX_DRAWN;
  const kept = [];
  for (let i = 0; i < MAX_DRAWN; i++) kept.push(points[Math.floor(i * step)]);
  kept.push(points[points.length - 1]);
  return kept;
}

function powerTicks(low, high) {
  const values = [];
  for (let k = Math.ceil(Math.log10(low)); k <= Math.floor(Math.log10(high)); k++) {
    values.push([10 ** k, formatNumber(10 ** k)]);
  }
  return values;
}

export class LineChart {
  // autoLog: a log y axis once the largest value is 30x the smallest (losses often are).
  constructor(container, { title, xLabel = "epoch", yRange = null, name = "", autoLog = false }) {
    this.title = title;
    this.autoLog = autoLog;
    this.xLabel = xLabel;
    this.yRange = yRange;
    this.series = new Map();
    this.emptyText = "waiting for data…";
    this.isScheduled = false;
    this.figure = document.createElement("figure");
    this.figure.className = "chart";
    if (name) this.figure.dataset.chart = name;
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    this.svg = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img" });
    this.svg.setAttribute("aria-label", title);
    this.legend = document.createElement("div");
    this.legend.className = "legend";
    this.figure.append(caption, this.svg, this.legend);
    container.append(this.figure);
    this.render();
  }

  // Appends a point; an x at or before the last one (a resumed job re-running epochs)
  // replaces the tail from there.
  add(name, x, y) {
    if (!this.series.has(name)) {
      this.series.set(name, { color: PALETTE[this.series.size % PALETTE.length], points: [] });
    }
    const points = this.series.get(name).points;
    while (points.length && points[points.length - 1][0] >= x) points.pop();
    points.push([x, y]);
    this.schedule();
  }

  set(name, points) {
    this.series.delete(name);
    for (const [x, y] of points) this.add(name, x, y);
    this.schedule();
  }

  // What an empty chart says instead of "waiting for data…" (a failed job: why).
  setEmptyText(text) {
    this.emptyText = text;
    this.schedule();
  }

  count() {
    let total = 0;
    for (const { points } of this.series.values()) total += points.length;
    return total;
  }

  schedule() {
    if (this.isScheduled) return;
    this.isScheduled = true;
    requestAnimationFrame(() => {
      this.isScheduled = false;
      this.render();
    });
  }

  bounds() {
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const { points } of this.series.values()) {
      for (const [x, y] of points) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        if (y === null || !Number.isFinite(y)) continue;
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
    if (this.yRange) [y0, y1] = this.yRange;
    if (!Number.isFinite(x0) || !Number.isFinite(y0)) return null;
    if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1]; // one epoch: its dot in the middle
    if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
    return { x0, x1, y0, y1 };
  }

  render() {
    this.svg.replaceChildren();
    this.svg.dataset.points = String(this.count());
    const box = this.bounds();
    if (!box) {
      this.svg.append(
        svg("text", { x: WIDTH / 2, y: HEIGHT / 2, class: "empty" }, this.emptyText),
      );
      this.renderLegend();
      return;
    }
    box.isLog = this.autoLog && box.y0 > 0 && box.y1 / box.y0 > 30;
    const ty = box.isLog ? Math.log10 : (y) => y;
    const [ly0, ly1] = [ty(box.y0), ty(box.y1)];
    const sx = (x) => PAD.left + ((x - box.x0) / (box.x1 - box.x0)) * (WIDTH - PAD.left - PAD.right);
    const sy = (y) => HEIGHT - PAD.bottom - ((ty(y) - ly0) / (ly1 - ly0)) * (HEIGHT - PAD.top - PAD.bottom);
    this.renderAxes(box, sx, sy);
    for (const [name, { color, points }] of this.series) {
      const finite = thin(points.filter(([, y]) => y !== null && Number.isFinite(y)));
      const line = svg("polyline", {
        points: finite.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
        stroke: color,
        fill: "none",
        "stroke-width": 2,
        "stroke-linejoin": "round",
      });
      line.dataset.series = name;
      line.dataset.count = String(points.length);
      this.svg.append(line);
      // A polyline of one vertex draws nothing: a one-epoch job gets a dot.
      if (finite.length === 1) {
        const [[x, y]] = finite;
        const dot = svg("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 4, fill: color, class: "point" });
        dot.dataset.series = name;
        this.svg.append(dot);
      }
    }
    this.renderLegend();
  }

  renderAxes(box, sx, sy) {
    const left = PAD.left;
    const bottom = HEIGHT - PAD.bottom;
    const yTicks = box.isLog ? powerTicks(box.y0, box.y1) : ticks(box.y0, box.y1, 4);
    if (box.isLog) this.svg.append(svg("text", { x: left + 6, y: PAD.top + 4, class: "label log" }, "log scale"));
    for (const [y, label] of yTicks) {
      this.svg.append(svg("line", { x1: left, x2: WIDTH - PAD.right, y1: sy(y), y2: sy(y), class: "grid" }));
      this.svg.append(svg("text", { x: left - 6, y: sy(y) + 4, class: "tick y" }, label));
    }
    // Epochs are whole numbers: no tick at epoch 1.5.
    for (const [x, label] of ticks(box.x0, box.x1, 5, this.xLabel === "epoch" ? 1 : 0)) {
      this.svg.append(svg("text", { x: sx(x), y: bottom + 16, class: "tick x" }, label));
    }
    this.svg.append(svg("line", { x1: left, x2: left, y1: PAD.top, y2: bottom, class: "axis" }));
    this.svg.append(svg("line", { x1: left, x2: WIDTH - PAD.right, y1: bottom, y2: bottom, class: "axis" }));
    this.svg.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 2, class: "label" }, this.xLabel));
  }

  renderLegend() {
    this.legend.replaceChildren();
    for (const [name, { color, points }] of this.series) {
      const item = document.createElement("span");
      const last = points.length ? points[points.length - 1][1] : null;
      item.innerHTML = `<i style="background:${color}"></i>`;
      item.append(`${name}${last === null ? "" : ` ${formatNumber(last)}`}`);
      this.legend.append(item);
    }
  }
}
