/**
 * The official HL7 validator test cases (FHIR/fhir-test-cases, R4 subset; see the fixtures'
 * SOURCE.md): our verdict (any error or not) must equal the Java validator's, and where Java
 * locates an error, one of ours must be at or below the same element (or, where we report at the
 * element and Java at one of its children, just above it).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { hasErrors, validateResource, type ValidateOptions } from '../../src/fhir/validation/validator.js';

const dir = path.join(import.meta.dirname, '../fixtures/validator-cases');

interface Case {
  name: string;
  file: string;
  java: string;
  validateContains?: ValidateOptions['validateContains'];
}

const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { 'test-cases': Case[] };

/** Not JSON at all (comments, missing/extra commas, unquoted names, wrong brackets): the JSON layer rejects them. */
const MALFORMED = new Set([
  'json-comments-1-no',
  'json-comments-2-no',
  'json-comma-bad-1',
  'json-comma-bad-2',
  'json-no-quotes-1',
  'json-no-quotes-2',
  'bad-json-close',
  'bad-json-close-2',
  'bad-json-close-3',
]);

const isError = (i: OperationOutcomeIssue): boolean => i.severity === 'error' || i.severity === 'fatal';

/**
 * Java's expressions carry decorations ours do not: `/*Practitioner/123*\/` comments after a
 * contained resource, `[url='...']` predicates on extensions, `.ofType(X)` on choices.
 */
function normalize(expression: string): string {
  return expression
    .replace(/\/\*.*?\*\//g, '')
    .replace(/\[url='[^']*']/g, '')
    .replace(/\.ofType\([^)]*\)/g, '');
}

/** Ours is at or below Java's element, or is the element just holding it (Java: `.url`, ours: the extension). */
function related(ours: string, java: string): boolean {
  const strip = (p: string) => p.replace(/\[\d+]/g, '');
  const [o, j] = [ours, java].map(strip) as [string, string];
  const under = (a: string, b: string) => a === b || a.startsWith(`${b}.`);
  return under(ours, java) || under(o, j) || (o.includes('.') && under(j, o));
}

describe('HL7 validator test cases (R4)', () => {
  it('has the 28 cases described in SOURCE.md', () => {
    expect(manifest['test-cases']).toHaveLength(28);
  });

  for (const testCase of manifest['test-cases']) {
    const text = readFileSync(path.join(dir, testCase.file), 'utf8');
    const java = JSON.parse(readFileSync(path.join(dir, 'outcomes', testCase.java), 'utf8')) as OperationOutcome;
    const javaErrors = (java.issue ?? []).filter(isError);

    if (MALFORMED.has(testCase.name)) {
      it(`${testCase.name}: is not JSON (rejected before validation, as Java rejects it)`, () => {
        expect(() => JSON.parse(text)).toThrow(SyntaxError);
        expect(javaErrors.length).toBeGreaterThan(0);
      });
      continue;
    }

    it(`${testCase.name}: ${javaErrors.length ? 'invalid' : 'valid'} as for the Java validator`, () => {
      const resource: unknown = JSON.parse(text);
      const issues = validateResource(resource, testCase.validateContains ? { validateContains: testCase.validateContains } : {});
      const ours = issues.filter(isError);
      expect(hasErrors(issues), JSON.stringify(ours, null, 1)).toBe(javaErrors.length > 0);

      for (const javaError of javaErrors) {
        const expression = javaError.expression?.[0];
        if (!expression) continue;
        const expected = normalize(expression);
        expect(
          ours.some((o) => (o.expression ?? []).some((e) => related(e, expected))),
          `no error of ours near ${expected} (Java: ${javaError.details?.text}); ours: ${ours.map((o) => o.expression?.join()).join(' | ')}`,
        ).toBe(true);
      }
      for (const o of ours) {
        expect(o.expression?.length).toBeGreaterThan(0);
        expect(o.details?.coding?.[0]?.code).toBe('VALIDATION_ERROR');
      }
    });
  }
});
