/**
 * The search parameters the server supports, per resource type, built from the official R4
 * SearchParameter definitions. Each parameter gets:
 * - `sp`, a stable 32-bit hash of "<Type>.<code>" ("Resource.<code>" for the base parameters
 *   shared by all types) that keys its rows in the idx_* tables;
 * - its FHIRPath expression cut down to the branches for this type (shared definitions such as
 *   clinical-patient list thirty types in one union) and parsed once;
 * - where its expression is the union of other parameters' of the type (Observation's combo-code
 *   is code | component-code), those parameters: it is searched by their rows and has none of its
 *   own, a third of a check-in's index rows.
 */
import { parseFhirPath, type FhirPathAtom } from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import { definitions } from '../fhir/definitions.js';

export type ParamType = 'string' | 'token' | 'reference' | 'date' | 'number' | 'quantity' | 'uri' | 'composite';

export interface CompositeComponent {
  param: ParamDef;
  /** FHIRPath relative to the composite's value, e.g. `value.as(Quantity)`. */
  expression: string;
  atom: FhirPathAtom;
}

export interface ParamDef {
  readonly code: string;
  readonly type: ParamType;
  /** The resource type the parameter is registered for, or 'Resource' for the base parameters. */
  readonly base: string;
  readonly url: string;
  readonly expression: string;
  readonly atom: FhirPathAtom;
  /** Key of the parameter's rows in its idx_* table. */
  readonly sp: number;
  /** Reference parameters: allowed target types. */
  readonly targets: readonly string[];
  /** Composite parameters: the components, each with its expression relative to the base value. */
  readonly components?: readonly CompositeComponent[];
  /** The parameters whose union this one is: it is searched by their rows and not indexed itself. */
  readonly unionOf?: readonly ParamDef[];
  readonly description?: string;
}

/** The keys of the index rows a search on `param` looks at. */
export function rowKeys(param: ParamDef): number[] {
  return param.unionOf ? param.unionOf.flatMap(rowKeys) : [param.sp];
}

/** Parameters answered from columns of the resources table rather than index rows. */
export const COLUMN_PARAMS = new Set(['_id', '_lastUpdated']);

/** 32-bit FNV-1a of the key, as a signed integer (PostgreSQL `integer`). */
export function spHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/** Splits a FHIRPath expression at top-level `|` operators. */
export function splitUnion(expression: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === '|' && depth === 0) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts.filter(Boolean);
}

/** The branches of a union expression that apply to `type` (or to every resource). */
export function branchesFor(expression: string, type: string): string | undefined {
  const kept = splitUnion(expression).filter((branch) => {
    const root = /^\(*\s*([A-Za-z]+)/.exec(branch)?.[1];
    return root === type || root === 'Resource' || root === 'DomainResource';
  });
  return kept.length ? kept.join(' | ') : undefined;
}

const SUPPORTED: ReadonlySet<string> = new Set(['string', 'token', 'reference', 'date', 'number', 'quantity', 'uri', 'composite']);

export class SearchRegistry {
  private readonly byType = new Map<string, Map<string, ParamDef>>();
  private readonly byUrl = new Map<string, SearchParameter>();
  /** Parameters in the definitions we do not support, with the reason (for docs and strict mode). */
  readonly unsupported = new Map<string, string>();

  constructor(params: readonly SearchParameter[], resourceTypes: readonly string[]) {
    for (const p of params) if (p.url) this.byUrl.set(p.url, p);
    const seen = new Map<number, string>();
    for (const type of [...resourceTypes, 'Resource']) this.byType.set(type, new Map());
    for (const p of params) {
      const code = p.code as string;
      if (!p.expression || !SUPPORTED.has(p.type as string)) {
        this.unsupported.set(code, `${p.type} parameter without a FHIRPath expression`);
        continue;
      }
      const isBase = (p.base as string[] | undefined)?.some((b) => b === 'Resource' || b === 'DomainResource');
      const bases = isBase ? ['Resource'] : (p.base ?? []);
      for (const base of bases) {
        const def = this.build(p, base);
        if (!def) continue;
        const key = `${base}.${code}`;
        const clash = seen.get(def.sp);
        if (clash && clash !== key) throw new Error(`search parameter hash collision: ${clash} and ${key}`);
        seen.set(def.sp, key);
        this.byType.get(base)?.set(code, def);
      }
    }
    for (const params of this.byType.values()) {
      const bySelection = new Map<string, ParamDef>();
      for (const p of params.values()) bySelection.set(selects(p.type, splitUnion(p.expression), p.components), p);
      const unions = new Map<string, ParamDef[]>();
      for (const def of params.values()) {
        const parts = unionOfOthers(def, bySelection);
        if (parts) unions.set(def.code, parts);
      }
      // A part may itself be a union (its parts have fewer branches, so this ends).
      const linked = (p: ParamDef): ParamDef => {
        const parts = unions.get(p.code);
        return parts ? { ...p, unionOf: parts.map(linked) } : p;
      };
      for (const code of unions.keys()) params.set(code, linked(params.get(code) as ParamDef));
    }
  }

  private build(p: SearchParameter, base: string): ParamDef | undefined {
    const code = p.code as string;
    // Base parameters are written "Resource.meta.tag": evaluated on a concrete resource, the path
    // must start below the root, which FHIRPath names by the concrete type.
    const expression =
      base === 'Resource'
        ? splitUnion(p.expression as string)
            .map((b) => b.replace(/^(Resource|DomainResource)\./, ''))
            .join(' | ')
        : branchesFor(p.expression as string, base);
    if (!expression) return undefined;
    let components: CompositeComponent[] | undefined;
    if (p.type === 'composite') {
      components = [];
      for (const c of p.component ?? []) {
        const target = this.byUrl.get(c.definition as string);
        if (!target || !target.expression || !SUPPORTED.has(target.type as string) || target.type === 'composite') {
          this.unsupported.set(`${base}.${code}`, 'composite with an unsupported component');
          return undefined;
        }
        const param = this.build(target, base);
        if (!param) return undefined;
        components.push({ param, expression: c.expression as string, atom: parseFhirPath(c.expression as string) });
      }
      if (!compositeShapeSupported(components)) {
        this.unsupported.set(`${base}.${code}`, 'composite not of two components, the first a token, reference or uri');
        return undefined;
      }
    }
    return {
      code,
      type: p.type as ParamType,
      base,
      url: p.url as string,
      expression,
      atom: parseFhirPath(expression),
      sp: spHash(`${base}.${code}`),
      targets: (p.target ?? []) as string[],
      ...(components ? { components } : {}),
      ...(p.description ? { description: p.description } : {}),
    };
  }

  /** The parameter `code` for `type`, including the base parameters shared by all types. */
  get(type: string, code: string): ParamDef | undefined {
    return this.byType.get(type)?.get(code) ?? this.byType.get('Resource')?.get(code);
  }

  /** The parameters registered for `type` itself (without the base ones). */
  forType(type: string): ParamDef[] {
    return [...(this.byType.get(type)?.values() ?? [])];
  }

  /** Base parameters shared by every resource type (_tag, _profile, ...). */
  base(): ParamDef[] {
    return [...(this.byType.get('Resource')?.values() ?? [])];
  }

  /** Every parameter that is indexed for `type`: its own and the base ones. */
  indexed(type: string): ParamDef[] {
    return [...this.forType(type).filter((p) => !p.unionOf), ...this.base().filter((p) => !COLUMN_PARAMS.has(p.code))];
  }
}

/** What makes two parameters select the same values: type, expression, and a composite's components. */
function selects(type: ParamType, branches: readonly string[], components: readonly CompositeComponent[] | undefined): string {
  return `${type}:${branches.join(' | ')}${components ? `#${components.map((c) => `${c.param.type}:${c.expression}`).join(',')}` : ''}`;
}

/**
 * The other parameters of the type (`bySelection`: its parameters by what they select) whose
 * expressions, one after the other, are `def`'s branches, if there are such (at least two). A
 * reference parameter is left alone: its rows carry more than its values (identifiers, includes).
 */
function unionOfOthers(def: ParamDef, bySelection: ReadonlyMap<string, ParamDef>): ParamDef[] | undefined {
  const branches = splitUnion(def.expression);
  if (def.type === 'reference' || branches.length < 2) return undefined;
  const parts: ParamDef[] = [];
  let i = 0;
  while (i < branches.length) {
    // The longest run of branches from here that is another parameter's whole expression (never
    // all of them: that is def's own).
    let length = branches.length - i - (i === 0 ? 1 : 0);
    let part: ParamDef | undefined;
    while (length >= 1 && !(part = bySelection.get(selects(def.type, branches.slice(i, i + length), def.components)))) length--;
    if (!part) return undefined;
    parts.push(part);
    i += length;
  }
  return parts;
}

/**
 * Two components, the first discrete (token, reference, uri): the shape of every R4 composite
 * but MolecularSequence's coordinates (two ranges), and the shape idx_composite holds (extract.ts).
 */
function compositeShapeSupported(components: CompositeComponent[]): boolean {
  return components.length === 2 && ['token', 'reference', 'uri'].includes(components[0]?.param.type as string);
}

let registry: SearchRegistry | undefined;

export function searchRegistry(): SearchRegistry {
  registry ??= new SearchRegistry(definitions().searchParameters, definitions().resourceTypes);
  return registry;
}
