/** A request's log lines: written by the server's logger, each carrying the request's id, credentials redacted. */
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { requestLogger } from '../src/log.js';

function recorded(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      done();
    },
  });
  const root = pino({ level, redact: { paths: ['*.authorization', 'authorization'], censor: '[redacted]' } }, sink);
  return { root, lines };
}

describe('a request\'s logger', () => {
  it('puts the request id in every line, in each of the ways a line is logged', () => {
    const { root, lines } = recorded('info');
    const log = requestLogger(root, { reqId: 'r-1' }, {});
    log.info({ method: 'GET', status: 200 }, 'request');
    log.warn('plain message');
    log.error(new Error('it broke'));
    log.error({ err: new Error('with details'), status: 500 }, 'request failed');
    expect(lines.map((l) => [l.reqId, l.msg])).toEqual([
      ['r-1', 'request'],
      ['r-1', 'plain message'],
      ['r-1', 'it broke'],
      ['r-1', 'request failed'],
    ]);
    expect(lines[0]).toMatchObject({ method: 'GET', status: 200, level: 30 });
    expect((lines[2]?.err as { message?: string }).message).toBe('it broke');
    expect((lines[3]?.err as { message?: string }).message).toBe('with details');
  });

  it('logs nothing below the level, redacts credentials, and makes children with the request id', () => {
    const { root, lines } = recorded('warn');
    const log = requestLogger(root, { reqId: 'r-2' }, {});
    log.info({ status: 200 }, 'request');
    log.debug('detail');
    expect(lines).toEqual([]);
    log.warn({ headers: { authorization: 'Bearer secret' } }, 'odd request');
    expect(JSON.stringify(lines)).not.toContain('secret');
    log.child({ part: 'x' }).error('from a child');
    expect(lines[1]).toMatchObject({ reqId: 'r-2', part: 'x', msg: 'from a child' });
    expect(log.level).toBe('warn');
  });

  it('is a child of its own when the route asks for another level', () => {
    const { root, lines } = recorded('warn');
    const log = requestLogger(root, { reqId: 'r-3' }, { level: 'info' });
    log.info('shown at the route\'s level');
    expect(lines).toMatchObject([{ reqId: 'r-3', msg: 'shown at the route\'s level' }]);
  });
});
