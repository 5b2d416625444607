// Uploaded datasets (POST/GET/DELETE /datasets): one cached list and cached details shared by
// the datasets panel and the job form's pickers; "datasets-changed" on document after a change.

import { ApiError, authHeaders, request } from "./api.js";

let listing = null;
const details = new Map();

// {data, count}, or null when this server has no /datasets (404).
export function listDatasets() {
  if (!listing) {
    listing = request("/datasets?limit=200").catch((error) => {
      listing = null;
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    });
  }
  return listing;
}

// The dataset with its schema and preview.
export function readDataset(id) {
  if (!details.has(id)) {
    details.set(id, request(`/datasets/${id}`).catch((error) => {
      details.delete(id);
      throw error;
    }));
  }
  return details.get(id);
}

function changed() {
  listing = null;
  details.clear();
  document.dispatchEvent(new CustomEvent("datasets-changed"));
}

// XMLHttpRequest rather than fetch: only it reports upload progress. onProgress(0..1).
export function uploadDataset(file, name, onProgress) {
  const body = new FormData();
  body.append("file", file);
  if (name) body.append("name", name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/datasets");
    for (const [header, value] of Object.entries(authHeaders())) xhr.setRequestHeader(header, value);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = xhr.responseText;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        changed();
        resolve(data);
      } else {
        reject(new ApiError(xhr.status, data && data.detail !== undefined ? data.detail : xhr.statusText));
      }
    };
    xhr.onerror = () => reject(new Error("the upload failed: the server could not be reached"));
    xhr.send(body);
  });
}

export async function deleteDataset(id) {
  await request(`/datasets/${id}`, { method: "DELETE" });
  changed();
}

// The columns a model can read from a table dataset (text columns it cannot).
export function usableColumns(dataset) {
  const schema = (dataset && dataset.schema) || {};
  return schema.kind === "table" ? (schema.columns || []).filter((c) => c.type !== "text") : [];
}
