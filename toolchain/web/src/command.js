// What to run, decided as src/boxer_py/launcher.py does: Docker's ENTRYPOINT/CMD rules, the
// image's Env plus HOME, WORKDIR normalized, `sh -c SCRIPT` as one simple command without a
// shell, and the program found on PATH inside the image and checked to be WebAssembly.

import { lookup } from "./tar.js";

export const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin";

export class RunError extends Error {
  constructor(message, exitCode = 125) {
    super(message);
    this.exitCode = exitCode;
  }
}

const SPECIAL = "|&;<>()`";

/** Split a command line into words like a POSIX shell (quotes, backslashes), refusing
 *  anything that needs a real shell (pipes, redirections, `&&`, `$(`). `env` expands $VAR. */
export function shellWords(line, env = null) {
  const words = [];
  let word = null;
  let i = 0;
  const expand = (name) => (env ? env[name] ?? "" : "$" + name);
  const variable = () => {
    const m = /^(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/.exec(line.slice(i + 1));
    if (!m || !env) return null;
    i += 1 + m[0].length;
    return expand(m[1] || m[2]);
  };
  while (i < line.length) {
    const c = line[i];
    if (c === " " || c === "\t" || c === "\n") {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (SPECIAL.includes(c) || line.startsWith("$(", i)) {
      throw new RunError(`the command ${JSON.stringify(line)} needs a shell (${line.startsWith("$(", i) ? "$(" : c}), and a WebAssembly image has none; use the exec form: ["prog", "arg"]`);
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new RunError(`the command ${JSON.stringify(line)} has an unterminated quote`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      word = word ?? "";
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\" && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) { word += line[i + 1]; i += 2; }
        else if (line[i] === "$" && env) { const v = variable(); if (v === null) { word += "$"; i++; } else word += v; }
        else word += line[i++];
      }
      if (i >= line.length) throw new RunError(`the command ${JSON.stringify(line)} has an unterminated quote`);
      i++;
    } else if (c === "\\" && i + 1 < line.length) {
      word = (word ?? "") + line[i + 1];
      i += 2;
    } else if (c === "$" && env) {
      const v = variable();
      word = (word ?? "") + (v === null ? "$" : v);
      if (v === null) i++;
    } else {
      word = (word ?? "") + c;
      i++;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** Docker's rules: ENTRYPOINT + CMD; arguments replace CMD. */
export function resolveArgv(config, command) {
  const argv = config.entrypoint.concat(command.length ? command : config.cmd);
  if (!argv.length) throw new RunError("no command: the image has no ENTRYPOINT or CMD; type one above");
  return argv;
}

export function normalize(path) {
  const out = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

function envObject(list) {
  const env = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq > 0) env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

/** argv, env (as "K=V" strings) and workdir of one run of `config` with `command` (words). */
export function plan(config, command, workdir = null) {
  const env = envObject(config.env);
  if (!("HOME" in env)) env.HOME = ["", "root", "0"].includes(config.user) ? "/root" : "/";
  let argv = resolveArgv(config, command);
  if (argv.length >= 3 && (argv[0] === "/bin/sh" || argv[0] === "sh") && argv[1] === "-c") {
    argv = shellWords(argv[2], env);
  }
  return {
    argv,
    env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    path: env.PATH ?? DEFAULT_PATH,
    workdir: normalize(workdir || config.workingDir),
  };
}

/** The program argv[0] names, as a file node of the rootfs tree, with its guest path. */
export function findProgram(root, name, path, workdir) {
  const candidates = name.includes("/")
    ? [name.startsWith("/") ? name : workdir.replace(/\/$/, "") + "/" + name]
    : path.split(":").map((d) => (d || ".") + "/" + name);
  for (const guest of candidates) {
    const { node } = lookup(root, guest.startsWith("/") ? guest : workdir + "/" + guest);
    if (node && node.type === "file") {
      const d = node.data;
      if (!(d.length >= 4 && d[0] === 0 && d[1] === 0x61 && d[2] === 0x73 && d[3] === 0x6d)) {
        throw new RunError(`${name}: ${guest} is not a WebAssembly program (native binaries and scripts cannot run here)`, 126);
      }
      return { guest, node };
    }
  }
  throw new RunError(`${name}: not found${name.includes("/") ? "" : ` in PATH (${path})`}`, 127);
}

/** As image/paths.py `cpython_start` (boxer run): CPython for WASI cannot find itself on PATH,
 *  so argv[0] is the path it was found at; and it has no user site unless PYTHONUSERBASE is set,
 *  so it gets HOME/.local (where `pip install --user` puts packages, as in Docker). */
export function cpythonStart(argv, env, found) {
  const name = argv[0];
  if (!/^python[0-9.]*$/.test(name.slice(name.lastIndexOf("/") + 1))) return { argv, env };
  const home = (env.find((e) => e.startsWith("HOME=")) || "HOME=").slice(5);
  const extra = !env.some((e) => e.startsWith("PYTHONUSERBASE=")) && home.startsWith("/")
    ? [`PYTHONUSERBASE=${home.replace(/\/$/, "")}/.local`] : [];
  return { argv: [name.includes("/") ? name : found, ...argv.slice(1)], env: env.concat(extra) };
}
