import type { FarmTrust } from "../../client/farm-trust.js";
/**
 * The live status screen: the farm's views (`views.stream`: a snapshot, then what changed, worker
 * progress and the fleet) kept in a `FarmViews`, drawn on the alternate screen and redrawn by
 * difference whenever they change, every second (ages move), and on a terminal resize.
 */
import { FarmViews, type ViewsMessage } from "@optimus/shared";
import { createFarmClient } from "../../client/farm-client.js";
import { cut } from "./layout.js";
import { ENTER_SCREEN, frameUpdate, LEAVE_SCREEN } from "./frame.js";
import { statusLines, type StatusInput } from "./rows.js";

export interface WatchOptions {
  url: string;
  token: string;
  /** what an https:// farm's certificate must satisfy */
  trust?: FarmTrust;
  /** only this task */
  task?: string;
  /** a fixed width (`--width`); otherwise the terminal's, followed on resize */
  width?: number;
  out: NodeJS.WriteStream;
  input: NodeJS.ReadStream;
}

/** What the views hold now, as the screen's input. */
function inputOf(views: FarmViews, task: string | undefined): StatusInput {
  const tasks = [...views.tasks.values()].filter((t) => !task || t.taskId === task);
  return {
    tasks,
    units: new Map(tasks.map((t) => [t.taskId, views.unitsOf(t.taskId)])),
    workers: views.workers,
    finishedNotSent: task ? 0 : views.history.more,
    now: views.farmNow(),
  };
}

/** Runs the live screen until q or Ctrl-C; the terminal is left as it was found. */
export async function watchStatus(o: WatchOptions): Promise<void> {
  const views = new FarmViews();
  let connection = "connecting to the farm…";
  let received = false;
  const ws = createFarmClient({
    url: o.url,
    token: o.token,
    trust: o.trust,
    transport: "ws",
    onConnectionChange: (s) => {
      connection = s === "open" ? "" : `connection to ${o.url} lost; reconnecting…`;
      schedule();
    },
  });
  let shown: string[] | null = null;
  let timer: NodeJS.Timeout | null = null;
  const draw = () => {
    timer = null;
    const width = o.width ?? o.out.columns ?? 80;
    const rows = o.out.rows ?? 24;
    const body = received ? statusLines(inputOf(views, o.task), { width, height: Math.max(3, rows - 2) }) : [];
    const footer =
      connection || (received ? `live · ${new Date().toLocaleTimeString()} · q or Ctrl-C to quit` : "loading the farm's views…");
    // A line the terminal would wrap (an id or a command wider than the screen) is cut here: a wrap would break the frame.
    const next = [...body, "", footer].slice(0, rows).map((l) => (l.length > width ? cut(l, width) : l));
    o.out.write(frameUpdate(shown, next, width));
    shown = next;
  };
  function schedule() {
    // Many messages in a burst make one redraw.
    timer ??= setTimeout(draw, 50);
  }
  o.out.write(ENTER_SCREEN);
  // After a resize the terminal has re-wrapped what it showed: the next frame is drawn whole.
  const onResize = () => {
    shown = null;
    schedule();
  };
  o.out.on("resize", onResize);
  const tick = setInterval(schedule, 1_000);
  schedule();
  try {
    await new Promise<void>((resolve, reject) => {
      const sub = ws.client.views.stream.subscribe(
        {},
        {
          onData: (env) => {
            views.apply(env.data as ViewsMessage);
            received = true;
            connection = "";
            schedule();
          },
          // The farm refused (a revoked token): nothing to wait for.
          onError: (err) => reject(err),
        },
      );
      const quit = () => {
        sub.unsubscribe();
        resolve();
      };
      process.once("SIGINT", quit);
      process.once("SIGTERM", quit);
      // Keys do not echo over the screen; q (or Ctrl-C, which raw mode delivers as a key) quits.
      if (o.input.isTTY) {
        o.input.setRawMode(true);
        o.input.on("data", (b: Buffer) => {
          const k = b.toString();
          if (k === "q" || k === "\x03" || k === "\x04") quit();
        });
        o.input.resume();
      }
    });
  } finally {
    clearInterval(tick);
    if (timer) clearTimeout(timer);
    o.out.off("resize", onResize);
    if (o.input.isTTY) {
      o.input.setRawMode(false);
      o.input.pause();
    }
    o.out.write(LEAVE_SCREEN);
    ws.close();
  }
}
