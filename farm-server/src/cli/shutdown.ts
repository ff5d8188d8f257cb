/**
 * How the long-running commands (`farm up`, `worker`) stop: the first Ctrl-C or SIGTERM stops them
 * cleanly within a deadline (running checks, evals and model turns are aborted), a second one exits
 * at once, and once stopped the process exits even if a library left a handle open (a model's
 * native threads, a socket still closing).
 */

/** How long a clean stop may take before the process exits anyway. */
export const STOP_DEADLINE_MS = 4_000;

/**
 * Resolves with the first SIGINT or SIGTERM. From then on, another one exits the process at once
 * (code 130), saying so.
 */
export function firstStopSignal(say: (msg: string) => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let first: NodeJS.Signals | null = null;
    const on = (sig: NodeJS.Signals) => {
      if (first) {
        say(`${sig} again: exiting now without finishing the stop`);
        process.exit(130);
      }
      first = sig;
      resolve(sig);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

/** Runs a stop, giving up on it after `ms` (false). */
export async function within(ms: number, stop: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([
      stop().then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ends the process shortly after a stop finished: at once when nothing is left (the timer does not
 * hold the process), or after `ms` when something still holds the event loop.
 */
export function exitSoon(code = 0, ms = 250): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), ms).unref();
}
