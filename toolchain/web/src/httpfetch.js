// One outbound guest connection in the browser: the bytes the guest sends are HTTP/1.1
// requests, each made with `fetch` (the browser does TCP, TLS and certificate checks), and the
// answer is written back as an HTTP/1.1 response on the same connection. What cannot be
// mapped (a protocol that is not HTTP, a server that does not allow this page's origin by
// CORS, a redirect the page may not read) ends in one clear line: a refused request never
// leaves the browser.

const MAX_HEAD = 64 << 10; // bytes of a request's line and headers
const MAX_BODY = 64 << 20; // bytes of a request or response body
const REQUEST_LINE = /^([A-Z]{1,20}) (\/[\x21-\x7e]*|\*) HTTP\/1\.[01]$/;
// Headers fetch sets itself or refuses (it would drop them silently): not passed on.
const DROPPED = new Set(["host", "connection", "content-length", "transfer-encoding", "keep-alive", "te", "trailer",
  "upgrade", "expect", "accept-encoding", "proxy-connection", "proxy-authorization", "cookie", "origin", "referer"]);
const RESPONSE_DROPPED = new Set(["content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"]);

export class HttpError extends Error {}

const encoder = new TextEncoder();

export function indexOf(bytes, pattern, from = 0) {
  outer: for (let i = from; i <= bytes.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (bytes[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

const CRLF = encoder.encode("\r\n");
const END_OF_HEAD = encoder.encode("\r\n\r\n");

/** The chunked body at the start of `bytes`: { body, used } or null while incomplete. */
export function dechunk(bytes) {
  const parts = [];
  let at = 0, total = 0;
  for (;;) {
    const eol = indexOf(bytes, CRLF, at);
    if (eol < 0) return null;
    const size = parseInt(new TextDecoder().decode(bytes.subarray(at, eol)).split(";")[0].trim(), 16);
    if (!Number.isSafeInteger(size) || size < 0) throw new HttpError("a malformed chunked request body");
    total += size;
    if (total > MAX_BODY) throw new HttpError(`a request body over ${MAX_BODY} bytes`);
    at = eol + 2;
    if (size === 0) {
      const end = indexOf(bytes, END_OF_HEAD, at - 2); // trailers, then an empty line
      if (end < 0) return null;
      const body = new Uint8Array(total);
      let o = 0;
      for (const p of parts) { body.set(p, o); o += p.length; }
      return { body, used: end + 4 };
    }
    if (bytes.length < at + size + 2) return null;
    parts.push(bytes.subarray(at, at + size));
    at += size + 2;
  }
}

/** The first complete request in `bytes`: { method, target, headers, body, close, used }, or
 *  null while more bytes are needed. Throws HttpError for what is not an HTTP/1.1 request. */
export function parseRequest(bytes) {
  const end = indexOf(bytes, END_OF_HEAD);
  const firstLine = indexOf(bytes, CRLF);
  if (firstLine >= 0 || bytes.length >= 8) {
    const line = new TextDecoder().decode(bytes.subarray(0, firstLine >= 0 ? firstLine : Math.min(bytes.length, 32)));
    if (firstLine >= 0 ? !REQUEST_LINE.test(line) : !/^[A-Z]{1,20} [\x21-\x7e]/.test(line)) {
      throw new HttpError("only HTTP/1.1 requests in origin form (GET /path HTTP/1.1) can go through the browser's fetch");
    }
  }
  if (end < 0) {
    if (bytes.length > MAX_HEAD) throw new HttpError(`a request head over ${MAX_HEAD} bytes`);
    return null;
  }
  if (end > MAX_HEAD) throw new HttpError(`a request head over ${MAX_HEAD} bytes`);
  const lines = new TextDecoder().decode(bytes.subarray(0, end)).split("\r\n");
  const [, method, target] = REQUEST_LINE.exec(lines[0]);
  const headers = [];
  for (const text of lines.slice(1)) {
    const colon = text.indexOf(":");
    if (colon <= 0) throw new HttpError("a malformed request header line");
    headers.push([text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim()]);
  }
  const get = (name) => headers.filter(([n]) => n === name).map(([, v]) => v).join(", ");
  let body = new Uint8Array(0), used = end + 4;
  if (/chunked/i.test(get("transfer-encoding"))) {
    const chunked = dechunk(bytes.subarray(used));
    if (chunked === null) return null;
    body = chunked.body;
    used += chunked.used;
  } else if (get("content-length")) {
    const length = Number(get("content-length"));
    if (!Number.isSafeInteger(length) || length < 0) throw new HttpError("a malformed Content-Length");
    if (length > MAX_BODY) throw new HttpError(`a request body over ${MAX_BODY} bytes`);
    if (bytes.length < used + length) return null;
    body = bytes.slice(used, used + length);
    used += length;
  }
  const close = /close/i.test(get("connection"));
  return { method, target, headers, body, close, used };
}

function head(status, reason, headers, length, close) {
  const lines = [`HTTP/1.1 ${status} ${reason}`];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  if (length !== null) lines.push(`content-length: ${length}`);
  lines.push(`connection: ${close ? "close" : "keep-alive"}`);
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/** A response the page makes itself when fetch could not give the server's (502, as a proxy). */
export function gatewayError(message, close) {
  const body = encoder.encode(`boxer: ${message}\n`);
  const reason = `Bad Gateway (${message})`.replace(/[\r\n]/g, " ");
  return concat([head(502, reason, [["content-type", "text/plain; charset=utf-8"]], body.length, close), body]);
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** Make `request` with fetch at `origin` (scheme://host:port) and return the HTTP/1.1
 *  response bytes. `addressSpace` is what the host must resolve to (Chromium refuses the
 *  request before sending it otherwise: a name may not lead to a loopback or private address). */
export async function exchange(origin, request, addressSpace) {
  const url = origin + (request.target === "*" ? "/" : request.target);
  const headers = new Headers();
  for (const [name, value] of request.headers) {
    if (DROPPED.has(name) || name.startsWith("proxy-") || name.startsWith("sec-")) continue;
    try { headers.append(name, value); } catch { /* a value fetch refuses: left out */ }
  }
  const noBody = request.method === "GET" || request.method === "HEAD";
  let response;
  try {
    response = await fetch(url, {
      method: request.method, headers, body: noBody ? undefined : request.body, redirect: "manual",
      credentials: "omit", cache: "no-store", mode: "cors", referrerPolicy: "no-referrer", targetAddressSpace: addressSpace,
    });
  } catch (e) {
    return gatewayError(`the browser's fetch of ${url} failed (${e.message}): the server must be reachable and `
      + "allow this page's origin (CORS)", request.close);
  }
  if (response.type === "opaqueredirect") {
    return gatewayError(`${url} answered with a redirect, which a page may not read: ask for the final URL`, request.close);
  }
  const body = request.method === "HEAD" ? new Uint8Array(0) : new Uint8Array(await response.arrayBuffer());
  if (body.length > MAX_BODY) return gatewayError(`the response from ${url} is over ${MAX_BODY} bytes`, true);
  const kept = [...response.headers].filter(([name]) => !RESPONSE_DROPPED.has(name));
  const bodyless = request.method === "HEAD" || response.status === 204 || response.status === 304;
  const reason = (response.statusText || "-").replace(/[\r\n]/g, " ");
  return concat([head(response.status, reason, kept, bodyless ? null : body.length, request.close), body]);
}
