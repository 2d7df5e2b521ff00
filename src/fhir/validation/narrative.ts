/**
 * Narrative (`text.div`) checks: txt-1 (well-formed XHTML, only the permitted elements and
 * attributes, no active content) and txt-2 (some content). Medplum evaluates these invariants
 * through `htmlChecks()`, which always returns true, and Samplan's portals render narrative as
 * HTML, so this is where script injection through narrative is stopped.
 *
 * The permitted element and attribute names are read from the txt-1 XPath of the R4 Narrative
 * definition itself, so they are exactly the specification's lists.
 */
import { SaxesParser } from 'saxes';
import { definitions } from '../definitions.js';
import { validationIssue, type Issues } from './issues.js';
import type { Node, Visitor } from './walk.js';

const XHTML_NS = 'http://www.w3.org/1999/xhtml';
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

interface Rules {
  readonly elements: ReadonlySet<string>;
  readonly attributes: ReadonlySet<string>;
  readonly txt1: string;
  readonly txt2: string;
}

let rules: Rules | undefined;

function narrativeRules(): Rules {
  if (rules) return rules;
  const div = definitions()
    .structureDefinitions.get('Narrative')
    ?.snapshot?.element?.find((e) => e.path === 'Narrative.div');
  const txt1 = div?.constraint?.find((c) => c.key === 'txt-1');
  const txt2 = div?.constraint?.find((c) => c.key === 'txt-2');
  // not(descendant-or-self::*[not(local-name(.)=('a', ...))]) and not(descendant-or-self::*/@*[not(name(.)=('abbr', ...))])
  const list = (fn: string): Set<string> => {
    const match = new RegExp(`[^-]${fn.replace(/[.()]/g, '\\$&')}=\\(([^)]*)\\)`).exec(txt1?.xpath ?? '');
    if (!match?.[1]) throw new Error(`Cannot read the ${fn} list of txt-1 from the Narrative definition`);
    return new Set(match[1].split(',').map((s) => s.trim().replace(/^'|'$/g, '')));
  };
  rules = {
    elements: list('local-name(.)'),
    attributes: list('name(.)'),
    txt1: txt1?.human ?? 'The narrative SHALL contain only the basic html formatting elements and attributes',
    txt2: txt2?.human ?? 'The narrative SHALL have some non-whitespace content',
  };
  return rules;
}

export function narrativeVisitor(issues: Issues): Visitor {
  return {
    value(node: Node): void {
      if (node.type === 'xhtml' && typeof node.value === 'string') checkNarrative(node.value, node.path, issues);
    },
  };
}

/** Checks one `div` value; `path` is its expression, e.g. `Patient.text.div`. */
export function checkNarrative(xhtml: string, path: string, issues: Issues): void {
  const { elements, attributes, txt1, txt2 } = narrativeRules();
  const problems = new Set<string>(); // txt-1 findings, each reported once
  let syntaxError: string | undefined;
  let rootProblem: string | undefined;
  let depth = 0;
  let rootSeen = false;
  let hasContent = false;

  const parser = new SaxesParser({ xmlns: true, position: true });
  parser.on('error', (err) => {
    syntaxError ??= err.message; // "line:column: message"; parsing goes on after it
  });
  parser.on('doctype', () => problems.add('a DOCTYPE declaration'));
  parser.on('processinginstruction', (pi) => problems.add(`a processing instruction <?${pi.target}?>`));
  parser.on('text', (text) => {
    if (text.trim()) hasContent = true;
  });
  parser.on('cdata', (text) => {
    if (text.trim()) hasContent = true;
  });
  parser.on('opentag', (tag) => {
    if (depth === 0) {
      if (!rootSeen && (tag.local !== 'div' || tag.uri !== XHTML_NS)) {
        rootProblem = `<${tag.name}>${tag.uri === XHTML_NS ? '' : ' without the XHTML namespace'}`;
      }
      rootSeen = true;
    } else if (tag.uri !== XHTML_NS) {
      problems.add(`element <${tag.name}> outside the XHTML namespace`);
    } else if (!elements.has(tag.local)) {
      problems.add(`element <${tag.local}>`);
    }
    if (!tag.isSelfClosing) depth++;
    for (const attr of Object.values(tag.attributes)) {
      if (attr.prefix === 'xmlns' || attr.name === 'xmlns') continue; // namespace declarations
      if (attr.uri === XML_NS && attr.local === 'lang') continue; // xml:lang, the XHTML form of lang
      if (attr.prefix || !attributes.has(attr.local)) {
        problems.add(`attribute ${attr.name} on <${tag.local}>`);
      } else if (isActiveContent(attr.local, attr.value)) {
        problems.add(`active content in ${attr.name}="${attr.value}" on <${tag.local}>`);
      }
    }
    if (tag.local === 'img' && tag.attributes.src?.value.trim()) hasContent = true;
  });
  parser.on('closetag', (tag) => {
    if (!tag.isSelfClosing) depth--;
  });

  try {
    parser.write(xhtml).close();
  } catch (err) {
    // saxes reports through the handler above; this only keeps validateResource from ever throwing
    syntaxError ??= err instanceof Error ? err.message : String(err);
  }

  if (syntaxError !== undefined || !rootSeen) {
    const hint = syntaxError?.includes('undefined entity')
      ? ' (HTML named entities such as &nbsp; are not defined in XHTML: use the character itself or a numeric reference such as &#160;)'
      : '';
    const reason = (syntaxError ?? 'no root element').replace(/^(\d+):(\d+): (.*?)\.?$/, '$3 (line $1, column $2)');
    issues.push(validationIssue('error', 'invalid', `The narrative is not well-formed XHTML: ${reason}${hint}`, path));
  }
  if (rootProblem) {
    issues.push(validationIssue('error', 'invalid', `The narrative must be a single <div xmlns="${XHTML_NS}"> element, but found ${rootProblem}`, path));
  }
  for (const problem of problems) {
    issues.push(validationIssue('error', 'invariant', `Constraint failed: txt-1: ${problem} is not allowed in the narrative ('${txt1}')`, path));
  }
  if (syntaxError === undefined && rootSeen && !hasContent) {
    issues.push(validationIssue('error', 'invariant', `Constraint failed: txt-2: '${txt2}'`, path));
  }
}

const URL_ATTRIBUTES = new Set(['href', 'src', 'longdesc', 'cite']);

/** Script-capable URLs in links/images and legacy script in styles. */
function isActiveContent(name: string, value: string): boolean {
  // Browsers ignore whitespace and control characters inside the scheme ("java\tscript:").
  const compact = value.replace(/[\s\u0000-\u001f]+/g, '').toLowerCase();
  if (name === 'style') return compact.includes('expression(') || compact.includes('javascript:');
  if (!URL_ATTRIBUTES.has(name)) return false;
  if (/^(javascript|vbscript|livescript):/.test(compact)) return true;
  // data: URLs only for (non-SVG) images; an SVG or HTML document can carry script.
  return compact.startsWith('data:') && (!compact.startsWith('data:image/') || compact.startsWith('data:image/svg'));
}
