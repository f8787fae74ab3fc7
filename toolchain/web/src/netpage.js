// The page's side of a networked run: the allow-list `boxer web --allow-net` wrote into the
// page (data-allow-net, rules as "host:port" or "host:*") and the guest-side modules of
// net.json (the same files `boxer run` gives a networked guest), handed to each run's worker.

export const NET_FILE = "net.json";

/** { allow, modules } for a page with an allow-list; null (no network, today's path) without. */
export async function loadNetwork(data) {
  const allow = (data.allowNet || "").split(/\s+/).filter(Boolean);
  if (!allow.length) return null;
  const response = await fetch(NET_FILE);
  if (!response.ok) throw new Error(`${NET_FILE}: cannot fetch (HTTP ${response.status})`);
  const { modules } = await response.json();
  if (typeof WebAssembly.Suspending !== "function") {
    throw new Error("this browser cannot suspend WebAssembly (JSPI), which the page's network needs: use Chromium 137 or later");
  }
  return { allow, modules };
}
