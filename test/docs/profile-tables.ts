/**
 * The tables of docs/profiles/ that are derived from Samplan's conformance resources: the
 * constraints of each profile, the sub-extensions of the zone extension, the concepts of each
 * code system and value set. In the markdown each sits between
 *
 *   <!-- generated:<kind> <canonical URL> -->
 *   …table…
 *   <!-- /generated -->
 *
 * test/docs/profiles.test.ts renders them again from the resources the server serves and fails
 * when a page differs. After changing a profile, refresh the pages with
 *
 *   npx tsx test/docs/profile-tables.ts --write
 */
import type { CodeSystem, ElementDefinition, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ConformanceResource = StructureDefinition | CodeSystem | ValueSet;
export type TableKind = 'elements' | 'invariants' | 'extension' | 'concepts';

export const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
export const PROFILE_DOCS = join(DOCS, 'profiles');

const HL7_SD = 'http://hl7.org/fhir/StructureDefinition/';

/** A table cell: pipes escaped, one line. */
const cell = (text: string | undefined): string => (text ?? '').replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
const code = (text: string): string => `\`${cell(text)}\``;

function typeText(element: ElementDefinition): string {
  return (element.type ?? [])
    .map((t) => {
      const targets = (t.targetProfile ?? []).map((p) => (p.startsWith(HL7_SD) ? p.slice(HL7_SD.length) : p));
      return targets.length ? `${t.code}(${targets.join(' | ')})` : (t.code ?? '');
    })
    .join(', ');
}

function cardinality(element: ElementDefinition): string {
  const own = `${element.min ?? 0}..${element.max ?? '*'}`;
  const base = element.base ? `${element.base.min ?? 0}..${element.base.max ?? '*'}` : own;
  return base === own ? code(own) : `${code(own)} (R4: ${code(base)})`;
}

function valueRules(element: ElementDefinition): string {
  const parts: string[] = [];
  const fixed = Object.entries(element).find(([k]) => k.startsWith('fixed'));
  const pattern = Object.entries(element).find(([k]) => k.startsWith('pattern'));
  if (fixed) parts.push(`fixed ${code(typeof fixed[1] === 'string' ? fixed[1] : JSON.stringify(fixed[1]))}`);
  if (pattern) {
    const codings = (pattern[1] as { coding?: Array<{ system?: string; code?: string }> }).coding;
    parts.push(`pattern ${codings ? codings.map((c) => code(`${c.system}#${c.code}`)).join(', ') : code(JSON.stringify(pattern[1]))}`);
  }
  if (element.binding?.valueSet && element.binding.strength !== 'example') parts.push(`${element.binding.strength} binding: ${code(element.binding.valueSet)}`);
  return parts.join('; ');
}

/** The elements a profile constrains (its differential), as they are in its snapshot. */
export function elementsTable(sd: StructureDefinition): string {
  const snapshot = new Map((sd.snapshot?.element ?? []).map((e) => [e.path, e]));
  const rows = (sd.differential?.element ?? [])
    .filter((d) => Object.keys(d).some((k) => !['id', 'path', 'constraint'].includes(k)))
    .map((d) => {
      const e = snapshot.get(d.path) ?? d;
      return `| ${code(d.path as string)} | ${cardinality(e)} | ${cell(typeText(e))} | ${cell(valueRules(e))} | ${d.mustSupport ? 'yes' : ''} | ${cell(d.short)} |`;
    });
  return ['| Element | Card. | Type | Fixed, pattern, binding | Must support | Note |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

/** The invariants a profile adds (those with the profile as their source). */
export function invariantsTable(sd: StructureDefinition): string {
  const rows = (sd.differential?.element ?? []).flatMap((d) =>
    (d.constraint ?? []).map((c) => `| ${code(c.key ?? '')} | ${c.severity ?? ''} | ${code(d.path as string)} | ${cell(c.human)} | ${code(c.expression ?? '')} |`),
  );
  if (!rows.length) return 'No invariants beyond those of R4.';
  return ['| Key | Severity | On | Rule | FHIRPath |', '|---|---|---|---|---|', ...rows].join('\n');
}

/**
 * The sub-extensions of a complex extension. A slice below `Extension.extension` belongs to the
 * complex sub-extension (one without a value) that precedes it in the differential.
 */
export function extensionTable(sd: StructureDefinition): string {
  const elements = sd.differential?.element ?? [];
  const byId = new Map(elements.map((e) => [e.id, e]));
  let parent = '';
  const rows = elements
    .filter((e) => e.sliceName)
    .map((e) => {
      const value = byId.get(`${e.id}.value[x]`);
      const complex = value?.max === '0';
      const nested = (e.path ?? '').split('.').length > 2;
      if (!nested) parent = complex ? (e.sliceName as string) : '';
      const name = nested && parent ? `${parent}.${e.sliceName}` : (e.sliceName as string);
      const type = complex ? '(sub-extensions)' : value?.type ? typeText(value) : '';
      return `| ${code(name)} | ${code(`${e.min ?? 0}..${e.max ?? '*'}`)} | ${cell(type)} | ${cell(e.short)} |`;
    });
  if (!rows.length) {
    // A simple extension: its one value.
    const root = byId.get('Extension');
    const value = byId.get('Extension.value[x]');
    rows.push(`| (none: a simple extension) | ${code(`${root?.min ?? 0}..${root?.max ?? '*'}`)} | ${cell(value ? typeText(value) : '')} | ${cell(root?.short)} |`);
  }
  return ['| Sub-extension (`url`) | Card. | Value | Meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export function conceptsTable(resource: CodeSystem | ValueSet): string {
  if (resource.resourceType === 'CodeSystem') {
    // A code system of a register's codes (HPR numbers, organisation numbers) lists none.
    if (resource.content === 'not-present') return `(\`content\`: \`not-present\`) ${cell(resource.description)}`;
    const rows = (resource.concept ?? []).map((c) => `| ${code(c.code as string)} | ${cell(c.display)} | ${cell(c.definition)} |`);
    return ['| Code | Display | Definition |', '|---|---|---|', ...rows].join('\n');
  }
  const rows = (resource.compose?.include ?? []).flatMap((inc) =>
    inc.concept?.length
      ? inc.concept.map((c) => `| ${code(inc.system as string)} | ${code(c.code as string)} | ${cell(c.display)} |`)
      : [`| ${code(inc.system as string)} | (all codes) | |`],
  );
  return ['| System | Code | Display |', '|---|---|---|', ...rows].join('\n');
}

export function render(kind: TableKind, resource: ConformanceResource): string {
  switch (kind) {
    case 'elements':
      return elementsTable(resource as StructureDefinition);
    case 'invariants':
      return invariantsTable(resource as StructureDefinition);
    case 'extension':
      return extensionTable(resource as StructureDefinition);
    case 'concepts':
      return conceptsTable(resource as CodeSystem | ValueSet);
  }
}

export interface GeneratedSection {
  file: string;
  kind: TableKind;
  url: string;
  content: string;
}

const SECTION = /<!-- generated:(elements|invariants|extension|concepts) (\S+) -->\n([\s\S]*?)\n?<!-- \/generated -->/g;

export function generatedSections(file: string, markdown: string): GeneratedSection[] {
  return [...markdown.matchAll(SECTION)].map((m) => ({ file, kind: m[1] as TableKind, url: m[2] as string, content: (m[3] ?? '').trim() }));
}

/** The markdown files of the information model and the profile pages. */
export function docFiles(): string[] {
  return [join(DOCS, 'information-model.md'), ...readdirSync(PROFILE_DOCS).filter((f) => f.endsWith('.md')).sort().map((f) => join(PROFILE_DOCS, f))];
}

/** Rewrites every generated section of the docs from `resources`; returns the files changed. */
export function writeGenerated(resources: readonly ConformanceResource[]): string[] {
  const byUrl = new Map(resources.map((r) => [r.url as string, r]));
  const changed: string[] = [];
  for (const file of docFiles()) {
    const before = readFileSync(file, 'utf8');
    const after = before.replace(SECTION, (_whole, kind: TableKind, url: string) => {
      const resource = byUrl.get(url);
      if (!resource) throw new Error(`${file}: no conformance resource ${url}`);
      return `<!-- generated:${kind} ${url} -->\n${render(kind, resource)}\n<!-- /generated -->`;
    });
    if (after !== before) {
      writeFileSync(file, after);
      changed.push(file);
    }
  }
  return changed;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--write')) {
  void import('../../src/plan/profiles/definitions.js').then(({ conformanceResources }) => {
    const changed = writeGenerated(conformanceResources as ConformanceResource[]);
    console.log(changed.length ? `Updated:\n${changed.join('\n')}` : 'The generated tables are up to date.');
  });
}
