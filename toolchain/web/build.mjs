// Builds the browser launcher into src/boxer_py/browser/web/ (committed, so `pip install` needs no
// Node): minified boxer.js (the page), editor.js (its code pane), terminal.js (xterm), worker.js (one run) and sw.js (published ports), preview.html (where an HTML
// output's scripts run when the user asks), style.css and xterm.css, and
// SOURCES.json, the sha256 of every input, which tests/test_web.py compares with the sources.
//   node build.mjs [OUTDIR]
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, "..", "..", "src", "boxer_py", "browser", "web");
const tmp = out + ".tmp";
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });

const common = { bundle: true, minify: true, format: "iife", target: "es2022", legalComments: "none", logLevel: "warning" };
// The code pane (CodeMirror, about half of the page's script) is its own module, loaded once the
// page has started its work, so the first run does not wait for it to be parsed and set up.
// The terminal (xterm, nine tenths of the rest) too: boxer.js starts reading the image and
// compiling the runtime before it is parsed.
await build({ ...common, entryPoints: [join(here, "src", "main.js")], outfile: join(tmp, "boxer.js"), external: ["./editor.js", "./terminal.js"] });
await build({ ...common, format: "esm", entryPoints: [join(here, "src", "editor.js")], outfile: join(tmp, "editor.js") });
await build({ ...common, format: "esm", entryPoints: [join(here, "src", "terminal.js")], outfile: join(tmp, "terminal.js") });
await build({ ...common, entryPoints: [join(here, "src", "worker.js")], outfile: join(tmp, "worker.js") });
await build({ ...common, entryPoints: [join(here, "src", "sw.js")], outfile: join(tmp, "sw.js") });
copyFileSync(join(here, "src", "style.css"), join(tmp, "style.css"));
copyFileSync(join(here, "src", "preview.html"), join(tmp, "preview.html"));
copyFileSync(join(here, "node_modules", "@xterm", "xterm", "css", "xterm.css"), join(tmp, "xterm.css"));

const inputs = ["package.json", "package-lock.json", "build.mjs", ...readdirSync(join(here, "src")).sort().map((f) => "src/" + f)];
const sources = Object.fromEntries(inputs.map((f) => [f, createHash("sha256").update(readFileSync(join(here, f))).digest("hex")]));
writeFileSync(join(tmp, "SOURCES.json"), JSON.stringify({ note: "sha256 of the inputs in toolchain/web; rebuild with `make web`", sources }, null, 2) + "\n");

rmSync(out, { recursive: true, force: true });
renameSync(tmp, out);
console.log(`built ${relative(process.cwd(), out) || out}`);
