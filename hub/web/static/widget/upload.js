// A visitor's file: checked against the widget's limits, then POST /widget/v1/files with
// the session's token; the answer's id goes into a message's `files`.

import { formatSize } from "./dom.js";

/** Why `file` may not be sent (a text for the visitor), or null. */
export function fileProblem(file, widget, t) {
  const limit = Number(widget.max_file_bytes) || 0;
  if (limit && file.size > limit) return t("file_too_big", { size: formatSize(limit) });
  const types = Array.isArray(widget.file_types) ? widget.file_types : [];
  if (types.length && !types.includes((file.type || "").toLowerCase())) return t("file_type");
  return null;
}

/** Upload `file`; resolves to the hub's {id, name, size, content_type}, or throws an Error
 * whose message is for the visitor. */
export async function uploadFile(file, { key, token, widget, t }) {
  const response = await fetch(`/widget/v1/files?key=${encodeURIComponent(key)}`, {
    method: "POST",
    body: file,
    headers: {
      "Content-Type": file.type || "application/octet-stream",
      "X-File-Name": encodeURIComponent(file.name),
      Authorization: `Bearer ${token || ""}`,
    },
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 201 && data && data.file && typeof data.file.id === "string") return data.file;
  if (response.status === 413) throw new Error(t("file_too_big", { size: formatSize(widget.max_file_bytes) }));
  if (response.status === 415) throw new Error(t("file_type"));
  throw new Error(t("upload_failed", { message: (data && data.message) || `HTTP ${response.status}` }));
}
