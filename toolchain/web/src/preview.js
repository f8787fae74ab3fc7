// Showing a guest's HTML file without letting it reach anything.
//
// By default a preview is the file's markup with no scripts: parsed here with DOMParser (an
// inert document: nothing loads, nothing runs), stripped of everything that makes Chromium
// open a connection even when the CSP then refuses it (frames, objects, links to click,
// refresh, preload hints, declarative shadow roots that could hide those), re-parsed to check
// that the result holds none of them, and shown in `<iframe sandbox="">` (no scripts, no
// forms, no popups, an opaque origin) with a strict CSP of its own prepended.
//
// Scripts run only when the user asks for it, per file: then the file is written into
// preview.html (served from this site, its own CSP: no fetch, no loads, no frames) inside
// `<iframe sandbox="allow-scripts">`, still an opaque origin. Chromium lets such scripts open
// WebRTC connections and navigate their frame (a GET to any address, refused only after it is
// sent): the button says so.

export const PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; media-src data:";

// Elements that load or navigate a browsing context, or hide markup from this check.
const DROP = new Set(["script", "iframe", "frame", "frameset", "object", "embed", "applet", "portal", "fencedframe",
  "meta", "link", "base", "template", "form", "set", "animate", "animatemotion", "animatetransform", "discard"]);
// Attributes that navigate on a click or ping someone; a fragment or data: link is kept.
const URL_ATTRIBUTES = new Set(["href", "xlink:href", "action", "formaction", "ping", "srcdoc", "src", "poster", "background",
  "srcset", "data", "codebase", "manifest", "itemtype", "longdesc", "lowsrc", "dynsrc", "cite", "attributionsrc"]);

function local(value) {
  const v = value.trim().toLowerCase();
  return v.startsWith("#") || v.startsWith("data:image/");
}

/** Whether an attribute may stay: no handlers, no shadow roots, no URL but a fragment or an
 *  inline image, and no absolute or scheme-relative URL in any attribute but `style` (whose
 *  url()s the CSP refuses before any request). */
function allowed(name, value) {
  name = name.toLowerCase();
  if (name.startsWith("on") || name === "shadowrootmode" || name === "shadowroot" || name === "is") return false;
  if (URL_ATTRIBUTES.has(name)) return local(value);
  return name === "style" || !value.includes("//") || local(value);
}

function clean(doc) {
  for (const el of [...doc.querySelectorAll("*")]) {
    if (DROP.has(el.localName.toLowerCase())) {
      el.remove();
      continue;
    }
    for (const attr of [...el.attributes]) {
      if (!allowed(attr.name, attr.value)) el.removeAttribute(attr.name);
    }
  }
}

function unsafe(doc) {
  for (const el of doc.querySelectorAll("*")) {
    if (DROP.has(el.localName.toLowerCase())) return el.localName;
    for (const attr of el.attributes) {
      if (!allowed(attr.name, attr.value)) return `${el.localName} ${attr.name}`;
    }
  }
  return null;
}

/** The srcdoc of a script-free preview of `html`, or null if it cannot be made safe. */
export function inertDocument(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  clean(doc);
  const csp = doc.createElement("meta");
  csp.setAttribute("http-equiv", "Content-Security-Policy");
  csp.setAttribute("content", PREVIEW_CSP);
  const dns = doc.createElement("meta");
  dns.setAttribute("http-equiv", "x-dns-prefetch-control");
  dns.setAttribute("content", "off");
  doc.head.prepend(csp, dns);
  const text = "<!doctype html>" + doc.documentElement.outerHTML;
  // What the frame will parse must be what was checked: parse it again and look.
  const again = new DOMParser().parseFromString(text, "text/html");
  const metas = again.querySelectorAll("meta");
  if (metas.length !== 2 || again.head.firstElementChild !== metas[0] || metas[0].getAttribute("content") !== PREVIEW_CSP) return null;
  for (const m of metas) m.remove();
  return unsafe(again) ? null : text;
}

/** A script-free preview frame. */
export function inertFrame(html, title) {
  const text = inertDocument(html);
  if (text === null) return null;
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", ""); // no scripts, forms, popups or navigation of the page; an opaque origin
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.dataset.scripts = "off";
  frame.title = title;
  frame.srcdoc = text;
  return frame;
}

/** A frame that runs the file's scripts: preview.html (its own CSP), an opaque origin. */
export function scriptFrame(html, title, previewUrl) {
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.dataset.scripts = "on";
  frame.title = title;
  let sent = false;
  frame.addEventListener("load", () => {
    if (sent) return; // the document navigated itself: it gets nothing more
    sent = true;
    frame.contentWindow.postMessage(html, "*"); // opaque origin: "*" is the only target it matches
  });
  frame.src = previewUrl;
  return frame;
}
