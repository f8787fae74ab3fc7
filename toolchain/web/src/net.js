// A networked run in the browser: the same guest-side modules and control protocol as under
// Wasmtime (src/boxer_py/runtime/net/: a control descriptor taking one JSON request at a time,
// socket slots reserved as extra preopens at start), served here by JavaScript.
//
// Outbound: a connect is checked against the page's --allow-net list; the connection's bytes
// are HTTP requests, each made with fetch (httpfetch.js). Inbound: a guest may listen on the
// page's published ports (--publish); requests the Service Worker relays (sw.js, inbound.js)
// are accepted as connections. A blocking call (recv, accept,
// poll) suspends the guest with JSPI (WebAssembly.Suspending / WebAssembly.promising, on by
// default in Chromium since 137): the imports that may block return a Promise only when they
// must wait, and the run's `_start` is called through WebAssembly.promising.

import { Fd, Directory, PreopenDirectory, File } from "@bjorn3/browser_wasi_shim";
import { HttpError, exchange, gatewayError, parseRequest, concat } from "./httpfetch.js";
import { parseResponse, requestBytes } from "./inbound.js";

// WASI's errno numbers.
const SUCCESS = 0, E2BIG = 1, EACCES = 2, EADDRINUSE = 3, EAFNOSUPPORT = 5, EAGAIN = 6, EBADF = 8, ECONNRESET = 15;
const EINVAL = 28, EISCONN = 30, EMFILE = 33, ENETUNREACH = 40, ENOTCONN = 53, ENOTSOCK = 57, ENOTSUP = 58, EPIPE = 64;
export const SLOTS = 64; // the control descriptor and 63 sockets, as net/wasi.py
export const GUEST_DIR = "/.boxer/net";
const MAX_REQUEST = 4096; // bytes of one control request, as net/host.py
const MAX_IO = 1 << 20;
const FILETYPE_CHARACTER_DEVICE = 2, FILETYPE_SOCKET_STREAM = 6;
const FDFLAGS_NONBLOCK = 4;
const ALL_RIGHTS = (1n << 29n) - 1n;
const EVENT_CLOCK = 0, EVENT_FD_READ = 1, EVENT_FD_WRITE = 2;
const SUBSCRIPTION_SIZE = 48, EVENT_SIZE = 32, MAX_SUBSCRIPTIONS = 4096;
const NO_UDP = "no UDP in the sandbox: only TCP is available";
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*$/;

/** A reserved descriptor: a preopen of a kind libc does not know, so it skips it. */
class SlotFd extends Fd {
  constructor(net, fd) { super(); Object.assign(this, { net, fd }); }
  fd_prestat_get() {
    return { ret: SUCCESS, prestat: { inner: { pr_name: new Uint8Array(0) }, write_bytes(view, ptr) { view.setUint8(ptr, 1); view.setUint32(ptr + 4, 0, true); } } };
  }
  fd_fdstat_get() {
    const conn = this.net.conns.get(this.fd);
    if (this.fd !== this.net.first && !conn) return { ret: EBADF, fdstat: null };
    const type = this.fd === this.net.first ? FILETYPE_CHARACTER_DEVICE : FILETYPE_SOCKET_STREAM;
    const flags = conn && conn.nonblocking ? FDFLAGS_NONBLOCK : 0;
    return { ret: SUCCESS, fdstat: { write_bytes(view, ptr) {
      view.setUint8(ptr, type); view.setUint16(ptr + 2, flags, true);
      view.setBigUint64(ptr + 8, ALL_RIGHTS, true); view.setBigUint64(ptr + 16, ALL_RIGHTS, true);
    } } };
  }
  fd_filestat_get() {
    const type = this.fd === this.net.first ? FILETYPE_CHARACTER_DEVICE : FILETYPE_SOCKET_STREAM;
    return { ret: SUCCESS, filestat: { write_bytes(view, ptr) {
      for (let i = 0; i < 64; i += 8) view.setBigUint64(ptr + i, 0n, true);
      view.setBigUint64(ptr + 8, BigInt(this.fd ?? 0), true); view.setUint8(ptr + 16, type); view.setBigUint64(ptr + 24, 1n, true);
    } } };
  }
  fd_fdstat_set_flags(flags) {
    const conn = this.net.conns.get(this.fd);
    if (this.fd === this.net.first) return SUCCESS;
    if (!conn) return EBADF;
    conn.nonblocking = !!(flags & FDFLAGS_NONBLOCK);
    return SUCCESS;
  }
}

/** One allow rule, "host:port" or "host:*" (as `str(Allow)`), IPv6 hosts in brackets. */
export function parseRule(text) {
  const m = /^(\[[0-9a-f:.]+\]|[^:]+):(\*|\d{1,5})$/i.exec(text);
  if (!m) return null;
  return { host: m[1].replace(/^\[|\]$/g, "").toLowerCase(), port: m[2] === "*" ? null : Number(m[2]) };
}

function ipKind(host) {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) {
    const [a, b] = v4.slice(1).map(Number);
    if (a === 127) return "loopback";
    if (a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 169 && b === 254) || a === 0) return "local";
    return "public";
  }
  if (host.includes(":")) {
    try { host = new URL(`http://[${host}]/`).hostname.slice(1, -1); } catch { return "invalid"; }
    if (host === "::1") return "loopback";
    if (/^(fc|fd|fe8|fe9|fea|feb)/.test(host)) return "local";
    return "public";
  }
  return null; // a name
}

/** One guest socket: new, connected to an allowed host:port (its bytes go through fetch),
 *  bound or listening on a published port, or an accepted ("inbound") connection. */
class Conn {
  constructor() {
    Object.assign(this, { state: "new", host: null, port: 0, tls: false, nonblocking: false, out: new Uint8Array(0),
      inq: [], eof: false, error: 0, busy: null, sent: false, queue: [], reply: null, head: false });
  }
}

export class WebNet {
  /** `allow`: the page's rules ("host:port"); `first`: the control descriptor's number;
   *  `log`: where a line for the user goes (the run's stderr). */
  constructor(allow, publish, first, log) {
    this.rules = allow.map(parseRule).filter(Boolean);
    this.publish = new Set(publish);
    Object.assign(this, { first, log, conns: new Map(), reply: new Uint8Array(0), wakers: new Set() });
  }

  owns(fd) { return fd >= this.first && fd < this.first + SLOTS; }

  /** The preopens to add after "/": the guest-side modules, an empty one (wasi-vfs forgets the
   *  last directory preopen before one of another kind), then the slots. */
  descriptors(modules) {
    const files = new Map();
    for (const [path, text] of Object.entries(modules)) {
      const parts = path.split("/").filter((p) => p && p !== "." && p !== "..");
      let dir = files;
      for (const part of parts.slice(0, -1)) {
        if (!dir.has(part)) dir.set(part, new Directory(new Map()));
        dir = dir.get(part).contents;
      }
      dir.set(parts[parts.length - 1], new File(new TextEncoder().encode(text), { readonly: true }));
    }
    const out = [new PreopenDirectory(GUEST_DIR, files), new PreopenDirectory("/.boxer/slot", new Map())];
    for (let i = 0; i < SLOTS; i++) out.push(new SlotFd(this, this.first + i));
    return out;
  }

  wake() {
    for (const w of this.wakers) w();
    this.wakers.clear();
  }

  changed() { return new Promise((resolve) => this.wakers.add(resolve)); }

  // -- the control descriptor -------------------------------------------------------------
  control(data) {
    let answer;
    if (data.length > MAX_REQUEST) answer = { errno: E2BIG, message: `control request over ${MAX_REQUEST} bytes` };
    else {
      try {
        const request = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
        if (!request || typeof request !== "object" || Array.isArray(request)) throw new TypeError("not an object");
        answer = this.handle(request);
      } catch (e) {
        answer = { errno: EINVAL, message: `malformed control request (${e.name})` };
      }
    }
    this.reply = new TextEncoder().encode(JSON.stringify(answer));
  }

  handle(request) {
    const op = request.op;
    if (op === "socket") {
      if (request.type !== "stream" && request.type !== "dgram") return { errno: ENOTSUP, message: "only TCP sockets are available (no UDP)" };
      if (request.family !== "inet" && request.family !== "inet6") return { errno: EAFNOSUPPORT, message: "only IPv4 and IPv6 sockets are available" };
      const fd = this.freeFd();
      if (fd === null) return { errno: EMFILE, message: `all ${SLOTS - 1} socket slots are in use` };
      // A UDP socket can be made but never used, as under Wasmtime (net/host.py): werkzeug's
      // app.run(host="0.0.0.0") makes one and catches only its connect's error.
      const conn = new Conn();
      if (request.type === "dgram") conn.state = "udp";
      this.conns.set(fd, conn);
      return { fd };
    }
    if (op === "pair") return this.pair();
    if (!["bind", "listen", "connect", "getsockname", "getpeername", "setsockopt", "tls"].includes(op)) return { errno: EINVAL, message: "unknown control request" };
    const conn = Number.isInteger(request.fd) ? this.conns.get(request.fd) : undefined;
    if (!conn) return { errno: EBADF, message: "not a socket of this guest" };
    if (conn.state === "udp" && ["bind", "listen", "connect", "tls"].includes(op)) return { errno: ENETUNREACH, message: NO_UDP };
    if (op === "bind") return this.bind(conn, request);
    if (op === "listen") {
      if (conn.state !== "bound" && conn.state !== "listening") return { errno: EINVAL, message: "listen() before bind()" };
      conn.state = "listening";
      return {};
    }
    if (op === "connect") return this.connect(conn, request);
    if (op === "getsockname") return { address: [conn.state === "bound" || conn.state === "listening" ? conn.bindHost : "0.0.0.0", conn.port && conn.state !== "connected" ? conn.port : 0] };
    if (op === "getpeername") {
      if (conn.state === "connected") return { address: [conn.host, conn.port] };
      return conn.state === "inbound" ? { address: ["127.0.0.1", 0] } : { errno: ENOTCONN, message: "not connected" };
    }
    if (op === "tls") {
      if (conn.state !== "connected" || conn.tls || conn.sent) return { errno: EINVAL, message: "TLS must start right after connect" };
      conn.tls = true; // the browser's fetch does TLS and checks the certificate for this name
      return { alpn: null };
    }
    return {}; // setsockopt: accepted, as under Wasmtime
  }

  /** socketpair(): two connected sockets in this worker, each one's writes the other's reads
   *  (asyncio's event loop wakes itself through one). */
  pair() {
    const a = this.freeFd();
    if (a !== null) this.conns.set(a, new Conn());
    const b = this.freeFd();
    if (a === null || b === null) {
      if (a !== null) this.conns.delete(a);
      return { errno: EMFILE, message: `all ${SLOTS - 1} socket slots are in use` };
    }
    const one = this.conns.get(a), two = new Conn();
    this.conns.set(b, two);
    Object.assign(one, { state: "pair", peer: two });
    Object.assign(two, { state: "pair", peer: one });
    return { fds: [a, b] };
  }

  bind(conn, request) {
    const { host, port } = request;
    if (typeof host !== "string" || host.length > 255 || !Number.isInteger(port)) return { errno: EINVAL, message: "malformed control request (address)" };
    if (conn.state !== "new") return { errno: EINVAL, message: "socket is already bound" };
    if (!this.publish.has(port)) {
      return { errno: EACCES, message: `port ${port} is not published: build the page with --publish ${port} to let the guest listen on it` };
    }
    for (const other of this.conns.values()) {
      if ((other.state === "bound" || other.state === "listening") && other.port === port) return { errno: EADDRINUSE, message: `port ${port} is already in use in the guest` };
    }
    Object.assign(conn, { state: "bound", port, bindHost: host || "0.0.0.0" });
    return {};
  }

  /** A request relayed from sw.js for `msg.port`: queued on the guest's listening socket, or
   *  answered at once when nothing listens there. */
  inbound(msg, reply) {
    const listener = [...this.conns.values()].find((c) => c.state === "listening" && c.port === msg.port);
    if (!listener) {
      reply.postMessage({ status: 503, error: `nothing in the guest listens on port ${msg.port}${this.publish.has(msg.port) ? "" : " (not published)"}` });
      return;
    }
    listener.queue.push({ msg, reply });
    this.wake();
  }

  /** [errno, new fd] for accept on a listening slot, or a Promise of that when it must wait. */
  accept(fd) {
    const conn = this.conns.get(fd);
    if (!conn) return [EBADF, 0];
    if (conn.state !== "listening") return [EINVAL, 0];
    const take = () => {
      if (!conn.queue.length) return null;
      const newFd = this.freeFd();
      if (newFd === null) return [EMFILE, 0];
      const { msg, reply } = conn.queue.shift();
      const accepted = new Conn();
      Object.assign(accepted, { state: "inbound", port: conn.port, inq: [requestBytes(msg, conn.port)], eof: false, reply, head: msg.method === "HEAD" });
      this.conns.set(newFd, accepted);
      this.reply = new TextEncoder().encode(JSON.stringify({ address: ["127.0.0.1", 0] })); // getpeername's answer, unasked (as net/host.py)
      return [SUCCESS, newFd];
    };
    const now = take();
    if (now) return now;
    if (conn.nonblocking) return [EAGAIN, 0];
    return (async () => {
      for (;;) {
        await this.changed();
        if (this.conns.get(fd) !== conn) return [EBADF, 0];
        const got = take();
        if (got) return got;
      }
    })();
  }

  freeFd() {
    for (let fd = this.first + 1; fd < this.first + SLOTS; fd++) if (!this.conns.has(fd)) return fd;
    return null;
  }

  /** Send an accepted connection's response to sw.js once it is whole (or the guest closed it). */
  respond(conn, final) {
    if (!conn.reply) return;
    const parsed = parseResponse(conn.out, final, conn.head);
    if (parsed === null) return;
    if (parsed.error) conn.reply.postMessage({ status: 502, error: `the guest's server on port ${conn.port}: ${parsed.error}` });
    else conn.reply.postMessage(parsed, [parsed.body.buffer]);
    // The client hangs up once it has its answer (its request said Connection: close), not
    // before: asyncio's transports close a connection whose peer ends first (uvicorn's do).
    conn.reply = null;
    conn.eof = true;
    this.wake();
  }

  rule(host, port) {
    return this.rules.find((r) => r.host === host && (r.port === null || r.port === port)) || null;
  }

  connect(conn, request) {
    const { host, port } = request;
    if (typeof host !== "string" || host.length > 255 || !Number.isInteger(port) || port <= 0 || port >= 65536) {
      return { errno: EINVAL, message: "malformed control request (address)" };
    }
    if (conn.state !== "new") return { errno: EISCONN, message: "socket is already connected or bound" };
    let name = host.toLowerCase().replace(/\.$/, "");
    const kind = ipKind(name);
    if (kind === "invalid" || (kind === null && !HOSTNAME.test(name))) return { errno: EINVAL, message: `${name}: not a host name or an IP address` };
    if (kind === null && name.split(".").every((p) => /^\d+$/.test(p))) return { errno: EINVAL, message: `${name}: not a host name or an IP address` };
    if (!this.rule(name, port)) return { errno: EACCES, message: `${name}:${port} is not in --allow-net` };
    // A name must lead to a public address (Chromium checks that when it resolves it, and sends
    // nothing otherwise); `localhost` and IP rules are what they say.
    conn.space = name === "localhost" ? "loopback" : kind || "public";
    Object.assign(conn, { state: "connected", host: name, port });
    return {};
  }

  // -- data ---------------------------------------------------------------------------------
  /** Bytes the guest sent on a connected slot: requests are started as soon as they are whole. */
  send(fd, data) {
    const conn = this.conns.get(fd);
    if (!conn) return [EBADF, 0];
    if (conn.state === "inbound") {
      if (conn.out.length + data.length > (64 << 20) + (64 << 10)) return [EPIPE, 0];
      conn.out = concat([conn.out, data]);
      this.respond(conn, false);
      return [SUCCESS, data.length];
    }
    if (conn.state === "pair") {
      const peer = conn.peer;
      if (!peer || peer.eof || conn.shutWrite) return [EPIPE, 0];
      const n = Math.min(data.length, MAX_IO);
      peer.inq.push(data.slice(0, n));
      this.wake();
      return [SUCCESS, n];
    }
    if (conn.state !== "connected") return [ENOTCONN, 0];
    if (conn.error || conn.eof) return [EPIPE, 0];
    conn.sent = true;
    conn.out = concat([conn.out, data]);
    for (;;) {
      let request;
      try {
        request = parseRequest(conn.out);
      } catch (e) {
        if (!(e instanceof HttpError)) throw e;
        this.log(`boxer: ${conn.host}:${conn.port}: ${e.message}\n`);
        conn.error = ECONNRESET;
        this.wake();
        return [SUCCESS, data.length];
      }
      if (request === null) break;
      conn.out = conn.out.slice(request.used);
      this.start(conn, request);
    }
    return [SUCCESS, data.length];
  }

  start(conn, request) {
    const host = conn.host.includes(":") ? `[${conn.host}]` : conn.host;
    const origin = `${conn.tls ? "https" : "http"}://${host}:${conn.port}`;
    const previous = conn.busy || Promise.resolve();
    conn.busy = previous.then(() => exchange(origin, request, conn.space)).catch((e) => gatewayError(String(e.message || e), true))
      .then((bytes) => {
        conn.inq.push(bytes);
        if (request.close) conn.eof = true;
        this.wake();
      });
    const mine = conn.busy;
    mine.then(() => { if (conn.busy === mine) conn.busy = null; });
  }

  /** Up to `size` bytes for the guest: [errno, bytes], or a Promise of that when it must wait. */
  recv(fd, size, peek) {
    const conn = this.conns.get(fd);
    if (!conn) return [EBADF, null];
    if (conn.state !== "connected" && conn.state !== "inbound" && conn.state !== "pair") return [ENOTCONN, null];
    const take = () => {
      if (conn.inq.length) {
        const first = conn.inq[0];
        const data = first.subarray(0, Math.min(size, MAX_IO));
        if (!peek) {
          if (data.length === first.length) conn.inq.shift();
          else conn.inq[0] = first.subarray(data.length);
        }
        return [SUCCESS, data];
      }
      if (conn.error) return [conn.error, null];
      if (conn.eof) return [SUCCESS, new Uint8Array(0)];
      if (conn.state === "connected" && !conn.busy && !conn.out.length && !conn.sent) {
        this.log(`boxer: ${conn.host}:${conn.port}: the guest waits for the server to speak first; only HTTP, where the client speaks first, goes through the browser's fetch\n`);
        conn.error = ECONNRESET;
        return [ECONNRESET, null];
      }
      return null;
    };
    const now = take();
    if (now) return now;
    if (conn.nonblocking) return [EAGAIN, null];
    const wait = async () => {
      for (;;) {
        await this.changed();
        const got = take();
        if (got) return got;
      }
    };
    return wait();
  }

  close(fd) {
    const conn = this.conns.get(fd);
    if (!conn) return EBADF;
    this.conns.delete(fd);
    if (conn.state === "inbound") this.respond(conn, true);
    if (conn.state === "pair" && conn.peer) { conn.peer.eof = true; conn.peer.peer = null; }
    for (const { reply } of conn.queue) reply.postMessage({ status: 503, error: `the guest stopped listening on port ${conn.port}` });
    this.wake();
    return SUCCESS;
  }

  shutdown(fd, how) {
    const conn = this.conns.get(fd);
    if (!conn) return EBADF;
    if (conn.state === "inbound" && how & 2) this.respond(conn, true); // SHUT_WR: the response is complete
    if (conn.state === "pair" && how & 2 && conn.peer) { conn.peer.eof = true; conn.shutWrite = true; this.wake(); }
    return SUCCESS;
  }

  readyRead(fd) {
    const conn = this.conns.get(fd);
    if (conn && conn.state === "listening") return conn.queue.length > 0;
    return !conn || conn.inq.length > 0 || conn.eof || !!conn.error;
  }
}

/** Override `wasi`'s descriptor calls for the slots of `net`; the calls that may wait are
 *  wrapped for JSPI. `memory()` gives the guest's memory (known once instantiated). */
export function install(wasi, net, memory) {
  const imp = wasi.wasiImport;
  const orig = { ...imp };
  const view = () => new DataView(memory().buffer);
  const bytes = () => new Uint8Array(memory().buffer);
  const iovs = (ptr, count) => {
    const v = view();
    const out = [];
    for (let i = 0; i < Math.min(count, 1024); i++) out.push([v.getUint32(ptr + 8 * i, true), v.getUint32(ptr + 8 * i + 4, true)]);
    return out;
  };
  const gather = (ptr, count) => {
    const parts = [];
    let total = 0;
    for (const [address, length] of iovs(ptr, count)) {
      const n = Math.min(length, MAX_IO - total);
      if (n <= 0) break;
      parts.push(bytes().slice(address, address + n));
      total += n;
    }
    return concat(parts);
  };
  const scatter = (ptr, count, data, outPtr) => {
    let done = 0;
    for (const [address, length] of iovs(ptr, count)) {
      if (done >= data.length) break;
      const piece = data.subarray(done, done + length);
      bytes().set(piece, address);
      done += piece.length;
    }
    view().setUint32(outPtr, done, true);
    return SUCCESS;
  };
  const finish = (result, ptr, count, outPtr) => {
    const [code, data] = result;
    return code || scatter(ptr, count, data, outPtr);
  };
  const read = (fd, ptr, count, outPtr, flags) => {
    if (fd === net.first) {
      const size = iovs(ptr, count).reduce((n, [, l]) => n + l, 0);
      const data = net.reply.subarray(0, size);
      net.reply = net.reply.subarray(data.length);
      return scatter(ptr, count, data, outPtr);
    }
    const size = iovs(ptr, count).reduce((n, [, l]) => n + l, 0);
    const result = net.recv(fd, size, !!(flags & 1));
    return result instanceof Promise ? result.then((r) => finish(r, ptr, count, outPtr)) : finish(result, ptr, count, outPtr);
  };
  const write = (fd, ptr, count, outPtr) => {
    const data = gather(ptr, count);
    if (fd === net.first) {
      net.control(data);
      view().setUint32(outPtr, data.length, true);
      return SUCCESS;
    }
    const [code, sent] = net.send(fd, data);
    if (code) return code;
    view().setUint32(outPtr, sent, true);
    return SUCCESS;
  };
  const suspending = (f) => new WebAssembly.Suspending(f);
  imp.fd_read = suspending((fd, ptr, count, outPtr) => (net.owns(fd) ? read(fd, ptr, count, outPtr, 0) : orig.fd_read(fd, ptr, count, outPtr)));
  imp.fd_write = (fd, ptr, count, outPtr) => (net.owns(fd) ? write(fd, ptr, count, outPtr) : orig.fd_write(fd, ptr, count, outPtr));
  imp.fd_close = (fd) => {
    if (!net.owns(fd)) return orig.fd_close(fd);
    return fd === net.first ? EBADF : net.close(fd);
  };
  imp.fd_renumber = (fd, to) => (net.owns(fd) || net.owns(to) ? EBADF : orig.fd_renumber(fd, to));
  imp.sock_recv = suspending((fd, ptr, count, flags, outPtr, outFlags) => {
    if (!net.owns(fd) || fd === net.first) return ENOTSOCK;
    const done = (code) => { if (!code) view().setUint16(outFlags, 0, true); return code; };
    const r = read(fd, ptr, count, outPtr, flags);
    return r instanceof Promise ? r.then(done) : done(r);
  });
  imp.sock_send = (fd, ptr, count, _flags, outPtr) => (!net.owns(fd) || fd === net.first ? ENOTSOCK : write(fd, ptr, count, outPtr));
  imp.sock_shutdown = (fd, how) => (!net.owns(fd) || fd === net.first ? ENOTSOCK : net.shutdown(fd, how));
  imp.sock_accept = suspending((fd, _flags, outPtr) => {
    if (!net.owns(fd) || fd === net.first) return ENOTSOCK;
    const done = ([code, newFd]) => { if (!code) view().setUint32(outPtr, newFd, true); return code; };
    const r = net.accept(fd);
    return r instanceof Promise ? r.then(done) : done(r);
  });
  imp.poll_oneoff = suspending((subs, events, count, countOut) => poll(net, view, subs, events, count, countOut));
}

function now(clock) {
  return clock === 0 ? BigInt(Date.now()) * 1000000n : BigInt(Math.round(performance.now() * 1e6));
}

/** poll_oneoff: clocks (a sleep waits without spinning), slots by their readiness, any other
 *  descriptor ready at once. */
function poll(net, view, subs, events, count, countOut) {
  if (count === 0 || count > MAX_SUBSCRIPTIONS) return EINVAL;
  const v = view();
  const ready = [], waiting = [];
  let wake = null;
  for (let i = 0; i < count; i++) {
    const base = subs + i * SUBSCRIPTION_SIZE;
    const userdata = v.getBigUint64(base, true);
    const tag = v.getUint8(base + 8);
    if (tag === EVENT_CLOCK) {
      const clock = v.getUint32(base + 16, true);
      let timeout = v.getBigUint64(base + 24, true);
      if (v.getUint16(base + 40, true) & 1) timeout = timeout > now(clock) ? timeout - now(clock) : 0n;
      if (wake === null || timeout < wake[0]) wake = [timeout, userdata];
    } else if (tag === EVENT_FD_READ || tag === EVENT_FD_WRITE) {
      const fd = v.getUint32(base + 16, true);
      if (net.owns(fd) && fd !== net.first && tag === EVENT_FD_READ && !net.readyRead(fd)) waiting.push([userdata, tag, fd]);
      else ready.push([userdata, net.owns(fd) && fd !== net.first && !net.conns.has(fd) ? EBADF : SUCCESS, tag, 1]);
    } else return EINVAL;
  }
  const put = (list) => {
    const out = view();
    list.forEach(([userdata, error, tag, nbytes], i) => {
      const at = events + i * EVENT_SIZE;
      for (let j = 0; j < EVENT_SIZE; j += 8) out.setBigUint64(at + j, 0n, true);
      out.setBigUint64(at, userdata, true);
      out.setUint16(at + 8, error, true);
      out.setUint8(at + 10, tag);
      out.setBigUint64(at + 16, BigInt(nbytes || 0), true);
    });
    out.setUint32(countOut, list.length, true);
    return SUCCESS;
  };
  if (ready.length || (!waiting.length && wake === null)) return put(ready);
  return (async () => {
    const deadline = wake === null ? null : performance.now() + Number(wake[0]) / 1e6;
    for (;;) {
      const got = waiting.filter(([, , fd]) => net.readyRead(fd)).map(([u, t]) => [u, SUCCESS, t, 1]);
      if (got.length) return put(got);
      if (deadline !== null && performance.now() >= deadline) return put([[wake[1], SUCCESS, EVENT_CLOCK, 0]]);
      const timer = deadline === null ? null : new Promise((r) => setTimeout(r, Math.max(0, deadline - performance.now())));
      await (waiting.length ? Promise.race([net.changed(), ...(timer ? [timer] : [])]) : timer);
    }
  })();
}
