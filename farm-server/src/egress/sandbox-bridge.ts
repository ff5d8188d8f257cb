/**
 * The in-sandbox half of the check's way out: run as `node -e BRIDGE_SCRIPT <port> <socket> <command>`
 * inside the check's network namespace. It listens on 127.0.0.1:<port> (the namespace's own loopback,
 * the only interface there is), forwards each connection to the Unix socket (served by the worker's
 * relay, see relay.ts), and only once listening runs `sh -c <command>` as its child, exiting with the
 * command's status (re-raising its signal), so the command never races the bridge and the bridge never
 * outlives the command.
 *
 * Plain CommonJS on purpose: `node -e` evaluates it with no module resolution, and it must not depend
 * on anything in the worktree being checked.
 */
export const EGRESS_BRIDGE_PORT = 3128;

export const BRIDGE_SCRIPT = String.raw`
"use strict";
const net = require("net");
const { spawn } = require("child_process");
const [port, sock, command] = process.argv.slice(1);
const pair = (a, b) => {
  a.pipe(b);
  a.on("error", () => { a.destroy(); b.destroy(); });
  a.on("close", (hadError) => { if (hadError) b.destroy(); else b.end(); });
};
const server = net.createServer({ allowHalfOpen: true }, (c) => {
  const u = net.connect({ path: sock, allowHalfOpen: true });
  pair(c, u);
  pair(u, c);
});
server.on("error", (e) => {
  process.stderr.write("optimus: the egress bridge cannot listen on 127.0.0.1:" + port + ": " + e.message + "\n");
  process.exit(125);
});
server.listen(Number(port), "127.0.0.1", () => {
  const child = spawn("sh", ["-c", command], { stdio: "inherit" });
  for (const s of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(s, () => child.kill(s));
  child.on("error", (e) => {
    process.stderr.write("optimus: cannot start the check: " + e.message + "\n");
    process.exit(127);
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      setTimeout(() => process.exit(128 + (require("os").constants.signals[signal] || 0)), 1000);
      return;
    }
    process.exit(code === null ? 1 : code);
  });
});
`;
