// The page's side of a networked run: the allow-list `boxer web --allow-net` wrote into the
// page (data-allow-net, rules as "host:port" or "host:*"), the published ports (data-publish,
// `--publish PORT`) and the guest-side modules of net.json (the same files `boxer run` gives a
// networked guest), handed to each run's worker; and, for published ports, the Service Worker
// (sw.js) whose requests this page relays to the running guest.

export const NET_FILE = "net.json";

/** { allow, publish, modules } for a page with a network; null (no network, today's path) without. */
export async function loadNetwork(data) {
  const allow = (data.allowNet || "").split(/\s+/).filter(Boolean);
  const publish = (data.publish || "").split(/\s+/).filter((p) => /^\d{1,5}$/.test(p)).map(Number);
  if (!allow.length && !publish.length) return null;
  const response = await fetch(NET_FILE);
  if (!response.ok) throw new Error(`${NET_FILE}: cannot fetch (HTTP ${response.status})`);
  const { modules } = await response.json();
  if (typeof WebAssembly.Suspending !== "function") {
    throw new Error("this browser cannot suspend WebAssembly (JSPI), which the page's network needs: use Chromium 137 or later");
  }
  if (publish.length) await startRelay(data.serviceWorker || "sw.js");
  return { allow, publish, modules };
}

let workers = () => [];

/** Where the relay sends requests: the page's current run (its worker). */
export function relayTo(current) { workers = current; }

/** Register the Service Worker and pass each request it hands over to the running guest's worker. */
async function startRelay(script) {
  if (!("serviceWorker" in navigator)) throw new Error("this browser has no Service Workers, which published ports need");
  navigator.serviceWorker.addEventListener("message", (event) => {
    const msg = event.data;
    const [reply] = event.ports;
    if (!msg || msg.type !== "boxer-inbound" || !reply) return;
    const worker = workers().at(-1);
    if (!worker) {
      reply.postMessage({ status: 503, error: `nothing runs: start the server (port ${msg.port}) first` });
      return;
    }
    worker.postMessage({ ...msg, type: "inbound" }, [reply, msg.body.buffer]);
  });
  navigator.serviceWorker.startMessages();
  await navigator.serviceWorker.register(script);
  await navigator.serviceWorker.ready;
  if (!navigator.serviceWorker.controller) {
    await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
  }
}
