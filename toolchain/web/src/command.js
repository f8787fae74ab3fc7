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

const isWasm = (d) => d.length >= 4 && d[0] === 0 && d[1] === 0x61 && d[2] === 0x73 && d[3] === 0x6d;

/** The first file a shell would run for `name` (on PATH, or the path it names), or null. */
function firstFile(root, name, path, workdir) {
  const candidates = name.includes("/")
    ? [name.startsWith("/") ? name : workdir.replace(/\/$/, "") + "/" + name]
    : path.split(":").map((d) => (d || ".") + "/" + name);
  for (const guest of candidates) {
    const { node } = lookup(root, guest.startsWith("/") ? guest : workdir + "/" + guest);
    if (node && node.type === "file") return { guest: normalize(guest.startsWith("/") ? guest : workdir + "/" + guest), node };
  }
  return null;
}

/** The program argv[0] names, as a file node of the rootfs tree, with its guest path. */
export function findProgram(root, name, path, workdir) {
  const found = firstFile(root, name, path, workdir);
  if (!found) throw new RunError(`${name}: not found${name.includes("/") ? "" : ` in PATH (${path})`}`, 127);
  if (!isWasm(found.node.data)) {
    throw new RunError(`${name}: ${found.guest} is not a WebAssembly program (native binaries and shell scripts cannot run here)`, 126);
  }
  return found;
}

const MAX_SHEBANG = 256; // as Linux reads a script's first line (image/paths.py)

/** As image/paths.py `interpreter_of`: the command a `#!` line asks for (the interpreter and at
 *  most one argument; `#!/usr/bin/env NAME` gives NAME, looked up on PATH), or null. */
export function interpreterOf(data) {
  if (!(data.length >= 2 && data[0] === 0x23 && data[1] === 0x21)) return null;
  let line = new TextDecoder().decode(data.slice(2, MAX_SHEBANG)); // a copy: the bytes may be shared
  const nl = line.indexOf("\n");
  if (nl >= 0) line = line.slice(0, nl);
  line = line.trim();
  const space = line.search(/[ \t]/);
  const interpreter = space < 0 ? line : line.slice(0, space);
  const arg = space < 0 ? "" : line.slice(space + 1).trim();
  if (!interpreter) return null;
  if (interpreter.slice(interpreter.lastIndexOf("/") + 1) === "env" && arg && !arg.startsWith("-")) return [arg.split(/\s+/)[0]];
  return arg ? [interpreter, arg] : [interpreter];
}

/** As runtime/argv.py `with_interpreter` (boxer run): a script whose `#!` interpreter is a
 *  WebAssembly program of the image (pip's console scripts: uvicorn, flask...) runs as exec
 *  would run it, [interpreter, (its argument), script, args...]; anything else is unchanged
 *  (findProgram then runs or refuses it). */
export function withInterpreter(root, argv, path, workdir) {
  const found = firstFile(root, argv[0], path, workdir);
  const command = found ? interpreterOf(found.node.data) : null;
  if (!command) return argv;
  const interpreter = firstFile(root, command[0], path, workdir);
  if (!interpreter || !isWasm(interpreter.node.data)) return argv;
  return [...command, found.guest, ...argv.slice(1)];
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
