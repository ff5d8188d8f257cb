import type http from "node:http";
import type { Leadership } from "../store/leader-lease.js";
import type { FarmTls } from "../tls/farm-tls.js";
import { createFarmPort } from "./farm-port.js";

/** The standby's answer on its port while another node leads: where the leader is, and nothing else. */
export interface StandbyServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

import { LEADER_HEADER, type FarmHealth } from "@optimus/shared";

/**
 * A farm node that stands by serves no API: `/healthz` says it is a standby and who leads, every other
 * request gets 503 with the leader's URL (header and message), and WebSocket upgrades are refused the
 * same way, so workers, the CLI and the editor move on to the leader instead of waiting here.
 */
export async function startStandbyServer(o: {
  host: string;
  port: number;
  version: string;
  /** the lead as last read from the store (null before the first read, or with no leader yet) */
  leader: () => (Leadership & { journalSeq: number }) | null;
  /** the farm's certificate: a standby of a TLS farm answers over TLS too */
  tls?: FarmTls;
}): Promise<StandbyServer> {
  const notLeader = () => {
    const l = o.leader();
    const url = l?.url ?? null;
    return {
      url,
      message: url ? `not the leader, try ${url}` : "not the leader; the leading farm node is starting (try again shortly)",
    };
  };
  const startedAt = Date.now();
  const onRequest: http.RequestListener = (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/healthz") {
      const l = o.leader();
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(
        JSON.stringify({
          ok: true,
          role: "standby",
          version: o.version,
          epoch: l?.epoch ?? 0,
          ...(l?.url ? { leaderUrl: l.url } : {}),
          // A standby replays at takeover (from the latest snapshot): everything the leader wrote is ahead of it.
          journalLag: l?.journalSeq ?? 0,
          uptimeMs: Date.now() - startedAt,
          workers: { codegen: 0, review: 0 },
          queue: { codegen: {}, review: {} },
        } satisfies FarmHealth),
      );
      return;
    }
    const n = notLeader();
    req.resume(); // a request body is not read, only drained
    res
      .writeHead(503, {
        "content-type": "application/json",
        "retry-after": "1",
        // Always present (empty while no leader is known): it tells clients this is a standby.
        [LEADER_HEADER]: n.url ?? "",
      })
      .end(JSON.stringify({ error: n.message, leaderUrl: n.url }) + "\n");
  };
  const farmPort = createFarmPort(onRequest, o.tls);
  const server = farmPort.server;
  server.on("upgrade", (_req, socket) => {
    const n = notLeader();
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\n${LEADER_HEADER}: ${n.url ?? ""}\r\ncontent-type: text/plain\r\n\r\n${n.message}\n`,
    );
  });
  await farmPort.listen(o.port, o.host);
  const port = farmPort.port;
  const shown = o.host.includes(":") ? `[${o.host}]` : o.host === "0.0.0.0" ? "127.0.0.1" : o.host;
  return {
    url: `${farmPort.scheme}://${shown}:${port}`,
    port,
    close: () => farmPort.close(),
  };
}
