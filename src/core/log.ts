/**
 * Structured logging: one line per event, `<P>level=... msg="..." key=value`, where <P> is the
 * syslog priority prefix that journald turns into the entry's priority. Fields are logfmt.
 * A `sink` receives the entries unformatted instead (journald's native protocol, with fields).
 * The level may be a LevelRef shared with whoever changes it at run time (SIGUSR1/SIGUSR2).
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger that adds these fields to every line. */
  with(fields: Fields): Logger;
  readonly level: Level;
}

/** A level that can change while loggers made with it exist. */
export interface LevelRef {
  current: Level;
}

/** Receives each entry at or above the level, with the logger's fields merged in. */
export type Sink = (level: Level, msg: string, fields: Fields) => void;

const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
export const PRIORITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

function quote(v: unknown): string {
  let s: string;
  if (v instanceof Error) s = v.message;
  else if (typeof v === 'string') s = v;
  else if (v === undefined) s = '';
  else if (typeof v === 'object') s = JSON.stringify(v);
  else s = String(v);
  return /^[\w./:@+-]+$/.test(s) ? s : JSON.stringify(s);
}

export function format(level: Level, msg: string, fields: Fields): string {
  let line = `<${PRIORITY[level]}>level=${level} msg=${quote(msg)}`;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${quote(v)}`;
  }
  return line;
}

export interface LoggerOptions {
  level?: Level | LevelRef;
  /** Where formatted lines go; default stderr. */
  write?: (line: string) => void;
  /** Takes the entries instead of `write`. */
  sink?: Sink;
  fields?: Fields;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const ref: LevelRef = typeof opts.level === 'object' ? opts.level : { current: opts.level ?? 'info' };
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const sink: Sink = opts.sink ?? ((l, msg, fields) => write(format(l, msg, fields)));
  const base = opts.fields ?? {};
  const emit = (l: Level) => (msg: string, fields?: Fields) => {
    if (RANK[l] < RANK[ref.current]) return;
    sink(l, msg, fields ? { ...base, ...fields } : base);
  };
  return {
    get level() {
      return ref.current;
    },
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    with: (fields) => createLogger({ level: ref, sink, fields: { ...base, ...fields } }),
  };
}

/** Discards everything; the default in unit tests. */
export const silentLogger: Logger = createLogger({ level: 'error', write: () => {} });
