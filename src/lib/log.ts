/** Structured logs: one JSON object per line. Never pass secrets or message content at info level. */
const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
type LogLevel = keyof typeof levels;

let threshold: number = levels.info;

/** LOG_LEVEL (debug | info | warn | error) is the same for every request of an isolate. */
export function setLogLevel(level: string | undefined): void {
  threshold = levels[level as LogLevel] ?? levels.info;
}

function write(level: LogLevel, msg: string, fields: Record<string, unknown>): void {
  if (levels[level] < threshold) return;
  const line = JSON.stringify({ level, msg, ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

export const log = {
  debug: (msg: string, fields: Record<string, unknown> = {}) => write("debug", msg, fields),
  info: (msg: string, fields: Record<string, unknown> = {}) => write("info", msg, fields),
  warn: (msg: string, fields: Record<string, unknown> = {}) => write("warn", msg, fields),
  error: (msg: string, error: unknown, fields: Record<string, unknown> = {}) =>
    write("error", msg, { ...fields, error: String(error), stack: error instanceof Error ? error.stack : undefined }),
};
