// Requests from the page's Service Worker (sw.js) to a guest server on a published port: each
// is written to the guest as an HTTP/1.1 request on a new accepted connection (Connection:
// close), and what the guest writes back is read as its HTTP response.

import { concat, dechunk, indexOf } from "./httpfetch.js";

const encoder = new TextEncoder();
const END_OF_HEAD = encoder.encode("\r\n\r\n");
const MAX_HEAD = 64 << 10;
const MAX_BODY = 64 << 20;
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"]);

/** The request bytes the guest reads for a message from sw.js. */
export function requestBytes(msg, port) {
  const lines = [`${msg.method} ${msg.target} HTTP/1.1`, `host: localhost:${port}`];
  for (const [name, value] of msg.headers) {
    if (!HOP.has(name.toLowerCase())) lines.push(`${name}: ${String(value).replace(/[\r\n]/g, " ")}`);
  }
  if (msg.body.length || !["GET", "HEAD"].includes(msg.method)) lines.push(`content-length: ${msg.body.length}`);
  lines.push("connection: close");
  return concat([encoder.encode(lines.join("\r\n") + "\r\n\r\n"), msg.body]);
}

/** The guest's response in `bytes`: { status, statusText, headers, body }, null while incomplete
 *  (at `final`, the connection closed: the rest is the body), or { error } if it is not one. */
export function parseResponse(bytes, final, head) {
  const end = indexOf(bytes, END_OF_HEAD);
  if (end < 0 || end > MAX_HEAD) {
    if (bytes.length > MAX_HEAD) return { error: `a response head over ${MAX_HEAD} bytes` };
    return final ? { error: bytes.length ? "a malformed HTTP response" : "the guest closed the connection without a response" } : null;
  }
  const lines = new TextDecoder().decode(bytes.subarray(0, end)).split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!status || Number(status[1]) < 200 || Number(status[1]) > 599) return { error: "a malformed HTTP status line" };
  const headers = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return { error: "a malformed response header line" };
    headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  const get = (name) => headers.filter(([n]) => n === name).map(([, v]) => v).join(", ");
  const rest = bytes.subarray(end + 4);
  const code = Number(status[1]);
  let body;
  if (head || code === 204 || code === 304) body = new Uint8Array(0);
  else if (/chunked/i.test(get("transfer-encoding"))) {
    let chunked;
    try { chunked = dechunk(rest); } catch (e) { return { error: e.message }; }
    if (chunked === null) return final ? { error: "a chunked response cut short" } : null;
    body = chunked.body;
  } else if (get("content-length")) {
    const length = Number(get("content-length"));
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_BODY) return { error: "a bad Content-Length" };
    if (rest.length < length) return final ? { error: "a response body cut short" } : null;
    body = rest.slice(0, length);
  } else {
    if (!final) return rest.length > MAX_BODY ? { error: `a response body over ${MAX_BODY} bytes` } : null;
    body = rest.slice();
  }
  return { status: code, statusText: (status[2] || "").slice(0, 200), headers: headers.filter(([n]) => !HOP.has(n)), body };
}
