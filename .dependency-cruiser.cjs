/**
 * The import rules of docs/conventions.md, checked by `npm run check:imports` (part of `npm test`).
 * A rule here is the one place it is written; the conventions point at it.
 */
const FARM = "^farm-server/src/";
const WORKER_MAY_USE = ["worker", "client", "sandbox", "git", "setup", "egress"];
module.exports = {
  forbidden: [
    {
      name: "no-folder-cycles",
      comment: "Folders of the farm server do not lean on each other in circles (one direction each).",
      severity: "error",
      scope: "folder",
      from: { path: FARM },
      to: { circular: true },
    },
    {
      name: "shared-stands-alone",
      comment: "shared/ holds the contracts between processes; it imports no other package of the project.",
      severity: "error",
      from: { path: "^shared/src/" },
      to: { path: "^(farm-server|extension|webview|test)/" },
    },
    {
      name: "extension-types-only",
      comment: "The editor extension imports only types from the farm server (it runs in another process).",
      severity: "error",
      from: { path: "^(extension|webview)/src/" },
      to: { path: "^farm-server/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "domain-without-transport",
      comment: "The domain (core, store, dispatch, files) knows nothing of the API, the CLI or the client.",
      severity: "error",
      from: { path: `${FARM}(core|store|dispatch|files)/` },
      to: { path: `${FARM}(api|cli|client)/` },
    },
    {
      name: "worker-on-its-side",
      comment:
        "The worker runs on other machines: it uses shared contracts, the client and the sandbox, never farm internals (not even their types).",
      severity: "error",
      from: { path: `${FARM}worker/` },
      to: { path: `${FARM}(?!(${WORKER_MAY_USE.join("|")})/)` },
    },
    {
      name: "farm-not-on-worker-code",
      comment: "Farm code does not import the worker's code: what both need lives in shared or in a folder of its own.",
      severity: "error",
      from: { path: FARM, pathNot: [`${FARM}(worker|cli)/`, `${FARM}index\\.ts$`] },
      to: { path: `${FARM}worker/` },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.base.json" },
    exclude: { path: "(^|/)(dist|node_modules)/" },
  },
};
