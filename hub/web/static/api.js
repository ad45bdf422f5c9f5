// The REST API, with the session cookie and the CSRF token on every unsafe request.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) {
  csrfToken = token;
}

export function loginUrl() {
  const next = location.pathname + location.search;
  return `/login?next=${encodeURIComponent(next)}`;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    const code = typeof error === "object" && error ? error.code : error;
    const message =
      (typeof error === "object" && error ? error.message : data && data.message) || "";
    if (response.status === 401 && !path.startsWith("/api/v1/session")) {
      location.assign(loginUrl());
    }
    throw new ApiError(response.status, code, message);
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
