/**
 * Expands the R4 ValueSets we ship (valuesets.json, v3 and v2 code systems) into code sets, for
 * checking required bindings without a terminology server. A ValueSet that depends on anything we
 * cannot enumerate (UCUM, BCP-47, MIME types, unknown or partial code systems, property filters)
 * expands to `undefined`, and callers then accept any code rather than reject valid data.
 */
import type { CodeSystem, CodeSystemConcept, ValueSet, ValueSetComposeInclude } from '@medplum/fhirtypes';
import { definitions } from '../definitions.js';
import { unversioned } from './schema.js';

/** system → codes. */
export type Expansion = ReadonlyMap<string, ReadonlySet<string>>;

/** Cached expansions; null marks a ValueSet that cannot be expanded (or is being expanded: an import cycle). */
const expansions = new Map<string, Expansion | null>();

/** The codes of a ValueSet (canonical, version ignored), or undefined if it cannot be fully expanded. */
export function expandValueSet(canonical: string): Expansion | undefined {
  const url = unversioned(canonical);
  if (expansions.has(url)) return expansions.get(url) ?? undefined;
  expansions.set(url, null);
  const vs = definitions().valueSets.get(url);
  const result = vs ? expand(vs) : undefined;
  expansions.set(url, result ?? null);
  return result;
}

/** True if the code (in the given system, or in any system when none is given) is in the expansion. */
export function expansionHas(expansion: Expansion, system: string | undefined, code: string): boolean {
  if (system !== undefined) return expansion.get(system)?.has(code) ?? false;
  for (const codes of expansion.values()) if (codes.has(code)) return true;
  return false;
}

function expand(vs: ValueSet): Expansion | undefined {
  const compose = vs.compose;
  if (!compose?.include?.length) return undefined;
  const result = new Map<string, Set<string>>();
  for (const include of compose.include) {
    const part = expandInclude(include);
    if (!part) return undefined;
    for (const [system, codes] of part) {
      const target = result.get(system) ?? new Set<string>();
      for (const code of codes) target.add(code);
      result.set(system, target);
    }
  }
  for (const exclude of compose.exclude ?? []) {
    const part = expandInclude(exclude);
    if (!part) return undefined; // cannot tell what is excluded
    for (const [system, codes] of part) for (const code of codes) result.get(system)?.delete(code);
  }
  return result;
}

/** One include/exclude: codes of a system (all, listed or filtered), intersected with imported ValueSets. */
function expandInclude(include: ValueSetComposeInclude): Map<string, Set<string>> | undefined {
  let result: Map<string, Set<string>> | undefined;
  if (include.system) {
    const codes = systemCodes(include);
    if (!codes) return undefined;
    result = new Map([[include.system, codes]]);
  }
  for (const imported of include.valueSet ?? []) {
    const expansion = expandValueSet(imported);
    if (!expansion) return undefined;
    result = result ? intersect(result, expansion) : copy(expansion);
  }
  return result;
}

function systemCodes(include: ValueSetComposeInclude): Set<string> | undefined {
  if (include.concept?.length) return new Set(include.concept.map((c) => c.code as string));
  const cs = definitions().codeSystems.get(include.system as string);
  if (!cs || cs.content !== 'complete') return undefined;
  const hierarchy = hierarchyOf(cs);
  let codes: Set<string> | undefined = new Set(hierarchy.all);
  for (const filter of include.filter ?? []) {
    if (filter.property !== 'concept' || !filter.value) return undefined;
    const subsumed = descendants(hierarchy, filter.value);
    let selected: Set<string>;
    switch (filter.op) {
      case 'is-a':
        selected = hierarchy.all.has(filter.value) ? new Set([filter.value, ...subsumed]) : subsumed;
        break;
      case 'descendent-of':
        selected = subsumed;
        break;
      case 'is-not-a':
        selected = new Set([...hierarchy.all].filter((c) => c !== filter.value && !subsumed.has(c)));
        break;
      default:
        return undefined;
    }
    codes = new Set([...codes].filter((c) => selected.has(c)));
  }
  return codes;
}

interface Hierarchy {
  readonly all: Set<string>;
  readonly children: Map<string, string[]>;
}

const hierarchies = new WeakMap<CodeSystem, Hierarchy>();

/** All codes of a CodeSystem with parent → children, from nesting and `parent`/`child`/`subsumedBy` properties. */
function hierarchyOf(cs: CodeSystem): Hierarchy {
  const cached = hierarchies.get(cs);
  if (cached) return cached;
  const all = new Set<string>();
  const children = new Map<string, string[]>();
  const link = (parent: string, child: string): void => {
    const list = children.get(parent) ?? [];
    list.push(child);
    children.set(parent, list);
  };
  const visit = (concepts: CodeSystemConcept[] | undefined, parent: string | undefined): void => {
    for (const concept of concepts ?? []) {
      const code = concept.code as string;
      all.add(code);
      if (parent) link(parent, code);
      for (const p of concept.property ?? []) {
        if (!p.valueCode) continue;
        if (p.code === 'parent' || p.code === 'subsumedBy') link(p.valueCode, code);
        if (p.code === 'child') link(code, p.valueCode);
      }
      visit(concept.concept, code);
    }
  };
  visit(cs.concept, undefined);
  const hierarchy = { all, children };
  hierarchies.set(cs, hierarchy);
  return hierarchy;
}

function descendants(hierarchy: Hierarchy, code: string): Set<string> {
  const result = new Set<string>();
  const stack = [...(hierarchy.children.get(code) ?? [])];
  while (stack.length) {
    const next = stack.pop() as string;
    if (result.has(next)) continue;
    result.add(next);
    stack.push(...(hierarchy.children.get(next) ?? []));
  }
  return result;
}

function intersect(a: Map<string, Set<string>>, b: Expansion): Map<string, Set<string>> {
  const result = new Map<string, Set<string>>();
  for (const [system, codes] of a) {
    const other = b.get(system);
    if (other) result.set(system, new Set([...codes].filter((c) => other.has(c))));
  }
  return result;
}

function copy(expansion: Expansion): Map<string, Set<string>> {
  return new Map([...expansion].map(([system, codes]) => [system, new Set(codes)]));
}
