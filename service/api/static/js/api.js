// HTTP calls to the torchkiln API, with the optional API key from localStorage.

const KEY_STORAGE = "torchkiln.apiKey";

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

// JSON in (object body) or multipart (FormData body), JSON out; non-2xx throws ApiError.
export async function request(path, { method = "GET", body } = {}) {
  const headers = { ...authHeaders() };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : text);
  }
  return data;
}

// A readable one-line message for any error a request can throw.
export function describeError(error) {
  if (!(error instanceof ApiError)) return String(error.message || error);
  if (Array.isArray(error.detail)) {
    return error.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  }
  const hint = error.status === 401 ? " (paste the server's API key in the box above)" : "";
  return `${error.status}: ${error.message}${hint}`;
}
