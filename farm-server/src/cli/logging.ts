import { dirname, resolve } from "node:path";
import { mkdirSync } from "node:fs";
import { pino, type DestinationStream, type Level, type LevelWithSilent, type Logger } from "pino";
import { LOG_REDACT } from "../secrets/log-redaction.js";
import { CliError } from "./errors.js";

export interface LogOptions {
  /** `--log-level` (default $OPTIMUS_LOG_LEVEL, else info) */
  logLevel?: string;
  /** `--log-file`: every line also goes there, as JSON */
  logFile?: string;
}

export interface CliLogs {
  /** the process's log, at the level asked for (the farm's transitions are at info) */
  log: Logger;
  /**
   * The command's own lines (listening, stopping, workers joined, a unit's outcome): on the same
   * log and in the same format, shown at info even when the level asked for is warn or error, as
   * a command's output is.
   */
  say: Logger;
  /** Writes what is buffered (before the process exits). */
  flush(): void;
}

const LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
/** In pretty lines the message already says these (a transition's fields): not printed twice. */
const SAID_IN_THE_MESSAGE = "pid,hostname,unit,task,from,to,attempt,worker,reason,event,url,epoch";

/**
 * The log of `farm up` and `worker`, through pino only (never a human line beside raw JSON): pretty
 * lines on a terminal (pino-pretty as a transport), JSON lines otherwise (a pipe, a file, a service
 * manager's journal); with `logFile`, JSON lines there too. Token, authorization and password
 * fields are redacted. Throws a usage error (exit 2) for an unknown level.
 */
export function cliLogs(o: LogOptions, out: NodeJS.WriteStream = process.stderr): CliLogs {
  const asked = (o.logLevel ?? process.env.OPTIMUS_LOG_LEVEL ?? "info").trim().toLowerCase();
  if (!LEVELS.includes(asked as LevelWithSilent)) {
    const where = o.logLevel !== undefined ? "--log-level" : "OPTIMUS_LOG_LEVEL";
    throw new CliError(`${where} must be one of ${LEVELS.join(", ")}, got '${asked}'`, 2);
  }
  const level = asked as LevelWithSilent;
  const file = o.logFile ? resolve(o.logFile) : undefined;
  if (file) {
    try {
      mkdirSync(dirname(file), { recursive: true });
    } catch (err) {
      throw new CliError(
        `--log-file ${file}: its folder cannot be made (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        2,
      );
    }
  }
  const fd = out === process.stdout ? 1 : 2;
  let stream: DestinationStream;
  let flush = () => undefined as void;
  if (out.isTTY) {
    // The transport runs in a worker thread and is flushed by pino when the process exits.
    stream = pino.transport({
      targets: [
        {
          target: "pino-pretty",
          level: "trace",
          options: { destination: fd, colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: SAID_IN_THE_MESSAGE, singleLine: true },
        },
        ...(file ? [{ target: "pino/file", level: "trace" as Level, options: { destination: file, mkdir: true } }] : []),
      ],
    }) as DestinationStream;
  } else {
    // Buffered (a busy farm logs thousands of transitions a second); flushed when the process exits.
    const err = pino.destination({ dest: fd, sync: false });
    const toFile = file ? pino.destination({ dest: file, sync: false, mkdir: true }) : null;
    stream = toFile
      ? pino.multistream([
          { level: "trace", stream: err },
          { level: "trace", stream: toFile },
        ])
      : err;
    flush = () => {
      for (const d of [err, toFile])
        try {
          d?.flushSync();
        } catch {
          // not open yet (nothing written): nothing to flush
        }
    };
    process.once("exit", flush);
  }
  const log = pino({ level, redact: LOG_REDACT }, stream);
  const more = level === "debug" || level === "trace";
  const say = log.child({}, { level: level === "silent" ? "silent" : more ? level : "info" });
  return { log, say, flush };
}
