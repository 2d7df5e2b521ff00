/**
 * Rejects HTML markup in plain-text values (string, markdown, code, uri, ...; not the narrative,
 * which narrative.ts checks). Samplan's portals display data that arrives from many systems, and
 * markup in a text field is an injection risk for any renderer that forgets to escape it.
 *
 * Only tag-like text built from real HTML element names counts, so clinical text with
 * comparisons (`SpO2 < 92 %`, `x<y`, `<5 mmol/l`, `a<b and c>d`) stays valid.
 */
import { validationIssue, type Issues } from './issues.js';
import type { Node, Visitor } from './walk.js';

/** Elements that run script or load content: suspicious as soon as `<name` appears. */
const ACTIVE = [
  'applet', 'audio', 'base', 'body', 'button', 'details', 'embed', 'form', 'frame', 'frameset', 'head',
  'html', 'iframe', 'image', 'img', 'input', 'isindex', 'link', 'marquee', 'math', 'meta', 'noscript',
  'object', 'plaintext', 'script', 'select', 'source', 'style', 'svg', 'template', 'textarea', 'video', 'xmp',
];

/** Other HTML elements (HTML Living Standard plus common obsolete ones): flagged only as complete tags. */
const FORMATTING = [
  'a', 'abbr', 'acronym', 'address', 'area', 'article', 'aside', 'b', 'basefont', 'bdi', 'bdo', 'bgsound',
  'big', 'blink', 'blockquote', 'br', 'canvas', 'caption', 'center', 'cite', 'code', 'col', 'colgroup', 'data',
  'datalist', 'dd', 'del', 'dfn', 'dialog', 'dir', 'div', 'dl', 'dt', 'em', 'fieldset', 'figcaption', 'figure',
  'font', 'footer', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'hgroup', 'hr', 'i', 'ins', 'kbd', 'keygen',
  'label', 'legend', 'li', 'listing', 'main', 'map', 'mark', 'menu', 'meter', 'nav', 'nobr', 'noembed',
  'noframes', 'ol', 'optgroup', 'option', 'output', 'p', 'param', 'picture', 'pre', 'progress', 'q', 'rp', 'rt',
  'ruby', 's', 'samp', 'search', 'section', 'slot', 'small', 'span', 'strike', 'strong', 'sub', 'summary', 'sup',
  'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'time', 'title', 'tr', 'track', 'tt', 'u', 'ul', 'var', 'wbr',
];

const ALL = [...ACTIVE, ...FORMATTING].join('|');
const ATTRIBUTE = `\\s+[a-z_:][\\w:.-]*\\s*=\\s*(?:"[^"]*"|'[^']*'|[^\\s"'=<>\`]+)`;

const PATTERNS: readonly RegExp[] = [
  // <script, </iframe, <img/src=...: no further syntax needed
  new RegExp(`</?(?:${ACTIVE.join('|')})(?![\\w-])`, 'i'),
  // <b>, <br/>, </p>, <a href="...">, <td colspan=2>
  new RegExp(`<(?:${ALL})(?:${ATTRIBUTE})*\\s*/?>|</(?:${ALL})\\s*>`, 'i'),
  // an event handler inside anything tag-like: <x onerror=...>
  /<[a-z][\w-]*[\s/][^<>]*\bon[a-z]{3,}\s*=/i,
];

/** True if the text contains something a browser would treat as HTML markup. */
export function looksLikeHtml(text: string): boolean {
  return text.includes('<') && PATTERNS.some((p) => p.test(text));
}

export function securityVisitor(issues: Issues): Visitor {
  return {
    value(node: Node): void {
      if (node.type === 'xhtml' || typeof node.value !== 'string' || !looksLikeHtml(node.value)) return;
      issues.push(
        validationIssue(
          'error',
          'invalid',
          `The value of ${node.path} contains text that looks like embedded HTML tags, which is not allowed for security reasons`,
          node.path,
        ),
      );
    },
  };
}

// Below U+0020 only tab, line feed and carriage return belong in text (R4 string).
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;

/**
 * What is wrong, if anything, with the reason for a change (X-Provenance, NHN's `comment`): it
 * goes into the Provenance the server writes without validating it per write, so it is held to
 * what validation would ask of any text, here, where it comes in.
 */
export function reasonProblem(text: string): string | undefined {
  if (text.length > 1000) return 'is longer than 1000 characters';
  if (CONTROL_CHARACTERS.test(text)) return 'contains control characters';
  if (looksLikeHtml(text)) return 'contains text that looks like HTML tags, which is not allowed for security reasons';
  return undefined;
}
