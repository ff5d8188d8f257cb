/**
 * A loopback npm registry stand-in: the registry protocol's two reads (a package's packument JSON
 * at `/<name>`, its tarball at `/<name>/-/<name>-<version>.tgz`), serving packages a test made with
 * `npm pack`. Every request is recorded, so a test can count installs. No public registry involved.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface PackedPackage {
  name: string;
  version: string;
  /** the package.json the tarball holds */
  manifest: Record<string, unknown>;
  tarball: Buffer;
}

/** npm env for the host side of a test: its own cache and config, never the user's or a proxy. */
export function isolatedNpmEnv(dir: string): NodeJS.ProcessEnv {
  // Nothing of an outer npm (`npm test` exports its whole configuration as npm_config_* and its
  // script context as npm_*) and no proxy: the project's own .npmrc and these settings only.
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^npm_/i.test(k) || /^(https?_proxy|no_proxy)$/i.test(k)) delete env[k];
  return {
    ...env,
    npm_config_cache: join(dir, ".npm-cache"),
    npm_config_userconfig: join(dir, ".npmrc-user"),
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
  };
}

/** Writes `files` as a package and packs it with `npm pack` (offline). */
export function packPackage(files: Record<string, string>): PackedPackage {
  const dir = mkdtempSync(join(tmpdir(), "optimus-pack-"));
  try {
    for (const [p, c] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, p)), { recursive: true });
      writeFileSync(join(dir, p), c);
    }
    const manifest = JSON.parse(files["package.json"]!) as Record<string, unknown>;
    const out = execFileSync("npm", ["pack", "--json", "--pack-destination", dir], {
      cwd: dir,
      env: isolatedNpmEnv(dir),
      stdio: ["ignore", "pipe", "pipe"],
    }).toString();
    const filename = (JSON.parse(out) as Array<{ filename: string }>)[0]!.filename;
    return { name: String(manifest.name), version: String(manifest.version), manifest, tarball: readFileSync(join(dir, filename)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface NpmRegistryStandin {
  /** http://localhost:<port>/ */
  url: string;
  port: number;
  /** "GET /path" of every request, in order */
  requests: string[];
  /** tarball downloads so far */
  tarballs(): number;
  add(pkg: PackedPackage): void;
  close(): Promise<void>;
}

export async function startNpmRegistryStandin(packages: PackedPackage[] = []): Promise<NpmRegistryStandin> {
  const byName = new Map<string, PackedPackage[]>();
  const add = (p: PackedPackage) => byName.set(p.name, [...(byName.get(p.name) ?? []).filter((q) => q.version !== p.version), p]);
  packages.forEach(add);
  const requests: string[] = [];
  let port = 0;
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    requests.push(`${req.method} ${path}`);
    const tgz = /^\/(.+)\/-\/[^/]+-(\d[^/]*)\.tgz$/.exec(path);
    if (tgz) {
      const p = byName.get(tgz[1]!)?.find((q) => q.version === tgz[2]);
      if (!p) return void res.writeHead(404).end();
      return void res.writeHead(200, { "content-type": "application/octet-stream", "content-length": p.tarball.length }).end(p.tarball);
    }
    const versions = byName.get(path.slice(1));
    if (!versions) return void res.writeHead(404, { "content-type": "application/json" }).end('{"error":"Not found"}');
    const base = `http://localhost:${port}`;
    const packument = {
      name: versions[0]!.name,
      "dist-tags": { latest: versions.at(-1)!.version },
      versions: Object.fromEntries(
        versions.map((p) => [
          p.version,
          {
            ...p.manifest,
            _id: `${p.name}@${p.version}`,
            dist: {
              tarball: `${base}/${p.name}/-/${p.name}-${p.version}.tgz`,
              shasum: createHash("sha1").update(p.tarball).digest("hex"),
              integrity: `sha512-${createHash("sha512").update(p.tarball).digest("base64")}`,
            },
          },
        ]),
      ),
    };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(packument));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
  return {
    url: `http://localhost:${port}/`,
    port,
    requests,
    add,
    tarballs: () => requests.filter((r) => r.endsWith(".tgz")).length,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
