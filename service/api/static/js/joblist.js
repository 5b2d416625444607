// The job list: newest first, polled so each row's status and progress stay current.

import { describeError, request } from "./api.js";
import { formatNumber } from "./chart.js";
import { queueText, shownStatus } from "./jobview.js";

const POLL_MS = 1500;

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function row(job, selectedId) {
  const tr = document.createElement("tr");
  tr.dataset.jobId = String(job.id);
  tr.dataset.status = job.status;
  if (job.id === selectedId) tr.className = "selected";
  const link = document.createElement("a");
  link.href = `#job/${job.id}`;
  link.textContent = `#${job.id}`;
  const id = document.createElement("td");
  id.append(link);
  const badge = document.createElement("span");
  const shown = shownStatus(job);
  badge.className = `badge status-${shown}`;
  badge.textContent = shown;
  const status = document.createElement("td");
  status.append(badge);
  const progress = queueText(job, true) || `${job.epoch} / ${job.epochs}`;
  const duration = job.duration_s === null ? "" : `${job.duration_s.toFixed(1)} s`;
  const model = cell(job.model);
  if (job.name) model.append(` · ${job.name}`);
  if (job.waiting_reason) status.title = job.waiting_reason;
  const best = job.best_value === null || job.best_value === undefined ? "" : formatNumber(job.best_value);
  tr.append(id, model, status, cell(progress, "num"), cell(best, "num"), cell(duration, "num"));
  tr.addEventListener("click", () => {
    location.hash = `#job/${job.id}`;
  });
  return tr;
}

// The filter bar's choices as GET /jobs query parameters (empty ones left out).
function filterQuery(filters) {
  const query = new URLSearchParams({ limit: "25" });
  if (!filters) return query;
  for (const name of ["q", "tag", "status", "sort"]) {
    const value = filters.elements[name].value.trim();
    if (value) query.set(name, value);
  }
  return query;
}

// Polls GET /jobs into tbody, as the filter bar asks; selectedId() marks the job on view.
export function startJobList(tbody, message, selectedId, filters = null) {
  let latest = 0;
  async function refresh() {
    const ticket = ++latest;
    try {
      const page = await request(`/jobs?${filterQuery(filters)}`);
      // A slower answer to an older filter must not overwrite a newer one.
      if (ticket !== latest) return;
      tbody.replaceChildren(...page.data.map((job) => row(job, selectedId())));
      const isFiltered = filterQuery(filters).size > 1;
      message.textContent = page.count ? "" : isFiltered ? "No job matches." : "No jobs yet: submit one.";
    } catch (error) {
      message.textContent = describeError(error);
    }
  }
  if (filters) {
    filters.addEventListener("input", refresh);
    filters.addEventListener("submit", (event) => event.preventDefault());
  }
  refresh();
  const timer = setInterval(refresh, POLL_MS);
  return { refresh, stop: () => clearInterval(timer) };
}
