/**
 * Extensions (`extension` / `modifierExtension`, at any depth and on primitives). Medplum's
 * validator only checks the Extension data type; here each extension is checked against its
 * definition: known URL (or an allowed domain), no version in the URL, used in a permitted
 * context, modifier or not as defined, an allowed value[x] type, and for complex extensions the
 * defined sub-extensions. Like the HL7 Java validator, an unknown extension is an error: Samplan
 * cannot know what an unknown extension means, and for a modifier extension that is unsafe.
 */
import { capitalize } from '@medplum/core';
import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';
import { checkCodedValue } from './bindings.js';
import { validationIssue, type Issues } from './issues.js';
import { extensionDefinition, onProfileRegistered } from './profiles.js';
import { typeAncestry, typeIndex, unversioned } from './schema.js';
import { isObject, type Node, type Visitor } from './walk.js';

let allowedDomains: readonly string[] = [];

/** URL prefixes (e.g. `https://samplan.no/fhir/`) whose extensions are accepted without a definition. */
export function setAllowedExtensionDomains(prefixes: string[]): void {
  allowedDomains = [...prefixes];
}

/** What a value[x] may be: no value, any type, or the listed type codes. */
interface ValueRule {
  readonly allowed: 'none' | 'any' | ReadonlySet<string>;
  readonly required: boolean;
  readonly valueSet?: string;
}

interface SubExtensionRule extends ValueRule {
  readonly min: number;
  readonly max: number;
}

/** The parts of an extension definition that instances are checked against, computed once per URL. */
interface ExtensionRules {
  readonly url: string;
  readonly contexts: ReadonlyArray<{ readonly type: string; readonly expression: string }>;
  readonly isModifier: boolean;
  readonly value: ValueRule;
  readonly nestedAllowed: boolean;
  /** Sub-extension slices by their (usually relative) url. */
  readonly slices: ReadonlyMap<string, SubExtensionRule>;
}

const rulesCache = new Map<string, ExtensionRules | null>();
onProfileRegistered((url) => rulesCache.delete(url));

function extensionRules(url: string): ExtensionRules | undefined {
  let rules = rulesCache.get(url);
  if (rules === undefined) {
    const sd = extensionDefinition(url);
    rules = sd ? compileRules(url, sd) : null;
    rulesCache.set(url, rules);
  }
  return rules ?? undefined;
}

function compileRules(url: string, sd: StructureDefinition): ExtensionRules {
  const elements = sd.snapshot?.element ?? sd.differential?.element ?? [];
  const byId = new Map(elements.map((e) => [e.id ?? e.path ?? '', e]));
  const slices = new Map<string, SubExtensionRule>();
  for (const e of elements) {
    if (e.path !== 'Extension.extension' || !e.sliceName) continue;
    const prefix = `Extension.extension:${e.sliceName}`;
    const sliceUrl = byId.get(`${prefix}.url`)?.fixedUri ?? e.sliceName;
    slices.set(sliceUrl, {
      ...valueRule(byId.get(`${prefix}.value[x]`)),
      min: e.min ?? 0,
      max: e.max === '*' || e.max === undefined ? Infinity : Number(e.max),
    });
  }
  const nested = byId.get('Extension.extension');
  return {
    url,
    contexts: (sd.context ?? []).map((c) => ({ type: c.type ?? 'element', expression: c.expression ?? '' })),
    isModifier: byId.get('Extension')?.isModifier === true,
    value: valueRule(byId.get('Extension.value[x]')),
    nestedAllowed: nested?.max !== '0',
    slices,
  };
}

function valueRule(element: ElementDefinition | undefined): ValueRule {
  if (!element) return { allowed: 'any', required: false }; // a differential that leaves value[x] open
  if (element.max === '0') return { allowed: 'none', required: false };
  const binding = element.binding;
  return {
    allowed: element.type?.length ? new Set(element.type.map((t) => t.code ?? '')) : 'any',
    required: (element.min ?? 0) > 0,
    ...(binding?.strength === 'required' && binding.valueSet ? { valueSet: unversioned(binding.valueSet) } : {}),
  };
}

export function extensionsVisitor(issues: Issues): Visitor {
  return {
    value(node: Node): void {
      if (node.type !== 'Extension' || !node.parent || !isObject(node.value)) return;
      checkExtension(node.value, node, node.parent, issues);
    },
  };
}

function checkExtension(ext: Record<string, unknown>, node: Node, host: Node, issues: Issues): void {
  const url = ext.url;
  if (typeof url !== 'string' || !url) return; // missing url: Medplum reports Extension.url 1..1
  // Inside a complex extension a relative url names a sub-extension, checked with its parent.
  if (host.type === 'Extension' && !url.includes(':')) return;
  const error = (message: string, path = node.path): void => {
    issues.push(validationIssue('error', 'structure', message, path));
  };
  if (url.includes('|')) {
    error(`The extension URL must not contain a version (${url})`);
  }
  const base = unversioned(url);
  const rules = extensionRules(base);
  if (!rules) {
    if (!allowedDomains.some((prefix) => base.startsWith(prefix))) {
      error(`The extension ${base} could not be found so is not allowed here`);
    }
    return;
  }
  if (rules.contexts.length && !rules.contexts.some((c) => contextMatches(c, host))) {
    const allowed = rules.contexts.map((c) => (c.type === 'element' ? c.expression : `${c.type}:${c.expression}`)).join(', ');
    error(
      `The extension ${base} is not allowed to be used at ${host.path} (this element is ${host.type} at ${host.rootedPath}; allowed contexts: ${allowed})`,
    );
  }
  const asModifier = node.property?.name === 'modifierExtension';
  if (asModifier !== rules.isModifier) {
    error(
      rules.isModifier
        ? `The extension ${base} is a modifier extension, so it must be in modifierExtension`
        : `The extension ${base} is not a modifier extension, so it must not be in modifierExtension`,
    );
  }
  checkValue(ext, rules.value, `extension ${base}`, node.path, issues);
  const children = Array.isArray(ext.extension) ? ext.extension.filter(isObject) : [];
  if (children.length && !rules.nestedAllowed) {
    error(`The extension ${base} is a simple extension and must not contain nested extensions`);
  } else if (rules.slices.size) {
    checkSubExtensions(children, rules, node.path, issues);
  }
}

/** Checks value[x] presence, type and required binding against a rule. */
function checkValue(ext: Record<string, unknown>, rule: ValueRule, what: string, path: string, issues: Issues): void {
  const error = (message: string, at = path): void => {
    issues.push(validationIssue('error', 'structure', message, at));
  };
  // `_valueString` alone is a value too: a primitive that only carries extensions.
  const key = Object.keys(ext).find((k) => /^_?value[A-Z]/.test(k))?.replace(/^_/, '');
  if (!key) {
    if (rule.required) {
      const types = typeof rule.allowed === 'string' ? '' : ` (${[...rule.allowed].map((t) => `value${capitalize(t)}`).join(', ')})`;
      error(`The ${what} requires a value${types}`);
    }
    return;
  }
  if (rule.allowed === 'any') return;
  if (rule.allowed === 'none') {
    error(`The ${what} is a complex extension and must not have a value (found ${key})`, `${path}.${key}`);
    return;
  }
  const type = typeIndex('Extension')?.properties.get(key)?.type;
  if (!type) return; // not a value[x] of Extension at all: Medplum reports the unknown property
  if (!rule.allowed.has(type)) {
    error(`The ${what} does not allow a value of type ${type} (allowed: ${[...rule.allowed].join(', ')})`, `${path}.${key}`);
    return;
  }
  if (rule.valueSet) checkCodedValue(ext[key], type, rule.valueSet, `${path}.${key}`, issues);
}

function checkSubExtensions(children: Record<string, unknown>[], rules: ExtensionRules, path: string, issues: Issues): void {
  const counts = new Map<string, number>();
  children.forEach((child, i) => {
    const url = child.url;
    if (typeof url !== 'string' || url.includes(':')) return; // absolute: checked as an extension of its own
    const slice = rules.slices.get(url);
    const childPath = `${path}.extension[${i}]`;
    if (!slice) {
      issues.push(validationIssue('error', 'structure', `The extension ${rules.url} does not define a sub-extension '${url}' (defined: ${[...rules.slices.keys()].join(', ')})`, childPath));
      return;
    }
    counts.set(url, (counts.get(url) ?? 0) + 1);
    checkValue(child, slice, `sub-extension '${url}' of ${rules.url}`, childPath, issues);
  });
  for (const [url, slice] of rules.slices) {
    const count = counts.get(url) ?? 0;
    if (count < slice.min || count > slice.max) {
      const max = Number.isFinite(slice.max) ? slice.max : '*';
      issues.push(validationIssue('error', 'structure', `The extension ${rules.url} must have ${slice.min}..${max} sub-extension(s) '${url}', but has ${count}`, path));
    }
  }
}

function contextMatches(context: { type: string; expression: string }, host: Node): boolean {
  switch (context.type) {
    case 'element': {
      const expression = context.expression.replace(/\[x]/g, '');
      if (expression === 'Element') return true; // "anywhere", resources included (as the Java validator reads it)
      if (typeAncestry(host.type).includes(expression)) return true;
      const paths = [host.rootedPath, host.elementPath.replace(/\[x]/g, ''), typeIndex(host.type)?.path];
      return paths.includes(expression);
    }
    case 'extension':
      return host.type === 'Extension' && isObject(host.value) && typeof host.value.url === 'string' && unversioned(host.value.url) === unversioned(context.expression);
    default:
      return true; // fhirpath contexts are not evaluated: accepted
  }
}
