// The page's Service Worker (registered only by a page built with `--publish PORT`): a request
// for `port/PORT/PATH` under the page's directory goes to the guest's server listening on that
// published port, through the page and the run's worker (net.js); its answer is the response.
// Every other request is left to the network as usual. Nothing is cached.

const PREFIX = /^port\/(\d{1,5})(\/.*)?$/;
const WAIT_MS = 120_000; // a guest that does not answer in time gets a 504
// Added to every guest response: opened as a document (a tab or a frame navigated to
// port/PORT/...), the guest's HTML gets an opaque origin and runs no script, so it can never act
// as the page's origin (its storage, its Service Worker, its allow-list). A page fetch reads the
// body as usual. (A guest's own policy header still applies too: both are enforced.)
const GUEST_CSP = "sandbox allow-forms; default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; form-action 'self'";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

/** A redirect's Location as the page must follow it: the guest names its own paths ("/next",
 *  or http://localhost:PORT/next from the Host it was given), which live under port/PORT/ here,
 *  as a reverse proxy rewrites them. Any other URL is left as it is. */
function rebase(location, port, scope) {
  const base = new URL(`port/${port}`, scope).href;
  if (location.startsWith("/") && !location.startsWith("//")) return base + location;
  let url;
  try { url = new URL(location); } catch { return location; }
  const own = (url.hostname === "localhost" || url.hostname === "127.0.0.1") && Number(url.port || 80) === port;
  return own && url.protocol === "http:" ? base + url.pathname + url.search + url.hash : location;
}

function text(status, message) {
  return new Response(`boxer: ${message}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

async function forward(event, port, path) {
  const request = event.request;
  const windows = await self.clients.matchAll({ type: "window" });
  const page = windows.find((c) => c.id === event.clientId) || windows.find((c) => new URL(c.url).pathname === new URL(self.registration.scope).pathname) || windows[0];
  if (!page) return text(503, "no page is open to run the guest");
  const body = request.method === "GET" || request.method === "HEAD" ? new Uint8Array(0) : new Uint8Array(await request.arrayBuffer());
  const url = new URL(request.url);
  const channel = new MessageChannel();
  const answer = new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), WAIT_MS);
    channel.port1.onmessage = ({ data }) => { clearTimeout(timer); resolve(data); };
  });
  page.postMessage({ type: "boxer-inbound", port, method: request.method, target: (path || "/") + url.search,
    headers: [...request.headers], body }, [channel.port2, body.buffer]);
  const reply = await answer;
  if (reply === null) return text(504, `the guest did not answer on port ${port} in time`);
  if (reply.error) return text(reply.status || 502, reply.error);
  try {
    const headers = new Headers(reply.headers);
    if (headers.has("location")) headers.set("location", rebase(headers.get("location"), port, self.registration.scope));
    headers.append("content-security-policy", GUEST_CSP);
    headers.set("x-content-type-options", "nosniff");
    return new Response(reply.status === 204 || reply.status === 304 || request.method === "HEAD" ? null : reply.body,
      { status: reply.status, statusText: reply.statusText, headers });
  } catch (e) {
    return text(502, `the guest's response on port ${port} cannot be passed on (${e.message})`);
  }
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const scope = new URL(self.registration.scope);
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  const match = PREFIX.exec(url.pathname.slice(scope.pathname.length));
  if (!match) return;
  event.respondWith(forward(event, Number(match[1]), match[2]));
});
