import { httpClient, type GlobalOptions } from "./context.js";
import { ago, printJson, table } from "./table.js";

/** `optimus worker list [--json]`: the fleet — who is connected, with what role, holding which units. */
export async function workerList(o: GlobalOptions & { json?: boolean }): Promise<void> {
  const { client } = httpClient(o);
  const workers = await client.workers.list.query();
  if (o.json) return printJson(workers);
  if (workers.length === 0) {
    console.log("no workers have registered: start one with `optimus worker --role codegen|review --farm <url> --token-file <file>`");
    return;
  }
  const now = Date.now();
  process.stdout.write(
    table(
      ["NODE", "ROLE", "CONNECTED", "LEASES", "LAST HEARTBEAT", "MODEL", "HOLDS"],
      workers.map((w) => [
        w.nodeId,
        w.role,
        w.connected ? `${ago(w.connectedSince ?? w.registeredAt, now)} ago` : "no",
        `${w.leases.length}/${w.capacity}`,
        `${ago(w.lastHeartbeatAt, now)} ago`,
        w.model,
        w.leases.join(" "),
      ]),
    ),
  );
  for (const role of ["codegen", "review"] as const)
    if (!workers.some((w) => w.connected && w.role === role))
      console.error(`no ${role} worker is connected: ${role} units wait until one is`);
}
