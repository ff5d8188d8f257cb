import type { LoggerOptions } from "pino";

/**
 * Fields no log line may carry as they are: tokens, authorization headers, passwords and keys,
 * at the top of a line's object or one level down (`{ req: { headers: { authorization } } }` too).
 * A secret that slipped into a message's text is the Redactor's job; this keeps structured fields out.
 */
export const LOG_REDACT: NonNullable<LoggerOptions["redact"]> = {
  paths: [
    "token",
    "*.token",
    "authorization",
    "*.authorization",
    "headers.authorization",
    "*.headers.authorization",
    "password",
    "*.password",
    "apiKey",
    "*.apiKey",
  ],
  censor: "[redacted]",
};
