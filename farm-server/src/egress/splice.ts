import type { Socket } from "node:net";

const HALF_CLOSED_GRACE_MS = 30_000;

/**
 * Pipes two sockets into each other, half-close aware (both must be `allowHalfOpen`), and calls
 * `done` once, when both are closed. An error on either side destroys both.
 */
export function splice(a: Socket, b: Socket, done?: (err?: Error) => void): void {
  let firstError: Error | undefined;
  let closed = 0;
  const onClose = (): void => {
    if (++closed === 2) done?.(firstError);
  };
  const wire = (from: Socket, to: Socket): void => {
    from.pipe(to);
    from.on("error", (err) => {
      firstError ??= err;
      to.destroy();
    });
    from.on("close", (hadError) => {
      // A side that closed without error has ended both ways; the other one only needs to finish.
      if (hadError) to.destroy();
      else if (!to.destroyed) {
        to.end();
        // a peer that never answers our FIN must not hold the socket forever
        setTimeout(() => to.destroy(), HALF_CLOSED_GRACE_MS).unref();
      }
      onClose();
    });
  };
  wire(a, b);
  wire(b, a);
}
