/** Strict JSON body parsing with clear messages (line and column) and a nesting limit. */
import { errors } from './outcomes.js';

/** Where in `text` a character offset is, as 1-based line and column. */
function position(text: string, offset: number): string {
  let line = 1;
  let column = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      column = 1;
    } else column++;
  }
  return `line ${line}, column ${column}`;
}

/** Deepest nesting of objects and arrays, computed without recursion (the input is untrusted). */
export function jsonDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) max = depth;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return max;
}

/** Parses a request body; throws a 400 FhirError that says what is wrong and where. */
export function parseJsonBody(text: string, maxDepth: number): unknown {
  if (text.trim() === '') throw errors.invalidJson('The request body is empty; a JSON document was expected');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = /position (\d+)/.exec(message);
    const where = at ? ` at ${position(text, Number(at[1]))}` : '';
    const reason = message.replace(/^JSON\.parse: /, '').replace(/ in JSON at position \d+.*$/, '').replace(/, "[\s\S]*$/, '');
    throw errors.invalidJson(`The body is not valid JSON${where}: ${reason}`);
  }
  const depth = jsonDepth(value, maxDepth);
  if (depth > maxDepth) {
    throw errors.invalidJson(`The JSON document is nested too deeply (more than ${maxDepth} levels)`);
  }
  return value;
}
