/**
 * Search parameters that are unions of others (Observation's combo-*): found by their expressions,
 * searched by their parts' rows, not indexed themselves — also when a part is itself such a union.
 */
import type { SearchParameter } from '@medplum/fhirtypes';
import { describe, expect, it } from 'vitest';
import { rowKeys, SearchRegistry } from '../../src/search/registry.js';

const param = (code: string, expression: string, type: SearchParameter['type'] = 'token'): SearchParameter => ({
  resourceType: 'SearchParameter',
  url: `urn:test:${code}`,
  name: code,
  status: 'active',
  description: code,
  code,
  base: ['Observation'],
  type,
  expression,
});

describe('a parameter that is the union of others', () => {
  const registry = new SearchRegistry(
    [
      param('code', 'Observation.code'),
      param('component-code', 'Observation.component.code'),
      param('category', 'Observation.category'),
      param('both', 'Observation.code | Observation.component.code'),
      param('all', 'Observation.code | Observation.component.code | Observation.category'),
      param('code-or-date', 'Observation.code | Observation.effective'),
      param('text', 'Observation.code | Observation.component.code', 'string'),
    ],
    ['Observation'],
  );
  const sp = (code: string) => registry.get('Observation', code)?.sp;

  it('is searched by its parts\' rows, a part that is a union by its own parts', () => {
    expect(rowKeys(registry.get('Observation', 'both')!)).toEqual([sp('code'), sp('component-code')]);
    expect(rowKeys(registry.get('Observation', 'all')!)).toEqual([sp('code'), sp('component-code'), sp('category')]);
    expect(rowKeys(registry.get('Observation', 'code')!)).toEqual([sp('code')]);
  });

  it('is not indexed itself; one with a branch no other parameter has, or of another type, is', () => {
    const indexed = registry.indexed('Observation').map((p) => p.code);
    expect(indexed).not.toContain('both');
    expect(indexed).not.toContain('all');
    expect(indexed).toEqual(expect.arrayContaining(['code', 'component-code', 'category', 'code-or-date', 'text']));
  });
});
