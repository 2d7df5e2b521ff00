/**
 * Structured JSON logs (pino). Nothing personal goes in: requests are logged as method, path and
 * status; credentials are redacted wherever they might appear.
 */
import type { FastifyBaseLogger } from 'fastify';
import pino, { type Bindings, type ChildLoggerOptions, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'samplan' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['authorization', '*.authorization', 'headers.authorization', '*.headers.authorization', 'password', '*.password', 'token', '*.token'],
      censor: '[redacted]',
    },
  });
}

/** What background workers log with: a pino Logger fits, and tests can pass a recorder. */
export interface WorkerLogger {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
  error(details: Record<string, unknown>, message: string): void;
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** See requestLogger: one small object per request, its methods on the prototype. */
class RequestLog implements FastifyBaseLogger {
  constructor(
    private readonly root: FastifyBaseLogger,
    private readonly bindings: Bindings,
  ) {}

  get level(): string {
    return this.root.level;
  }

  set level(level: string) {
    this.root.level = level;
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }

  error(...args: unknown[]): void {
    this.write('error', args);
  }

  warn(...args: unknown[]): void {
    this.write('warn', args);
  }

  info(...args: unknown[]): void {
    this.write('info', args);
  }

  debug(...args: unknown[]): void {
    this.write('debug', args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.root.child({ ...this.bindings, ...bindings }, options);
  }

  private write(level: Level, [first, ...rest]: unknown[]): void {
    const root = this.root;
    if (!(root as Partial<Logger>).isLevelEnabled?.(level)) return;
    const log = root[level] as (obj: object, ...args: unknown[]) => void;
    if (first instanceof Error) log.call(root, { ...this.bindings, err: first }, ...(rest.length ? rest : [first.message]));
    else if (typeof first === 'object' && first !== null) log.call(root, { ...this.bindings, ...first }, ...rest);
    else log.call(root, this.bindings, first, ...rest);
  }
}

/**
 * A request's logger (Fastify's `childLoggerFactory`): each line it logs carries the request's
 * bindings (its id), written by the server's logger. A pino child made for every request — its
 * bindings serialised and redacted up front — was 3 % of a read's CPU, though a request logs at
 * most a line or two, and none at all at level warn. A child with options of its own (a route's
 * log level) is made as before.
 */
export function requestLogger(root: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return Object.keys(options).length ? root.child(bindings, options) : new RequestLog(root, bindings);
}
