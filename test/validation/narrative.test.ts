import { describe, expect, it } from 'vitest';
import { validateResource } from '../../src/fhir/validation/validator.js';

const XHTML = 'http://www.w3.org/1999/xhtml';
const patient = (div: string) => ({ resourceType: 'Patient', text: { status: 'generated', div } });
const errors = (div: string) => validateResource(patient(div)).filter((i) => i.severity === 'error');
const texts = (div: string) => errors(div).map((i) => i.details?.text ?? '');

describe('narrative (txt-1, txt-2)', () => {
  it('accepts the basic formatting elements, tables, links, images and styles', () => {
    const div = `<div xmlns="${XHTML}"><h1>Plan</h1><p style="color: red"><b>Viktig</b> <i>tekst</i> &amp; &lt;5 mmol/l&#160;</p>
      <table class="grid"><thead><tr><th>A</th></tr></thead><tbody><tr><td colspan="2">1</td></tr></tbody></table>
      <ul><li><a href="http://x">lenke</a> <a name="anker">anker</a></li></ul><img src="#photo" alt="bilde"/><br/><![CDATA[ x < y ]]></div>`;
    expect(errors(div)).toEqual([]);
  });

  it('rejects <script> with a txt-1 message at the div', () => {
    const issues = errors(`<div xmlns="${XHTML}">tekst<script>alert(1)</script></div>`);
    expect(issues.map((i) => i.expression?.[0])).toEqual(['Patient.text.div']);
    expect(issues[0]?.details?.text).toMatch(/^Constraint failed: txt-1: element <script>/);
  });

  it('rejects event handlers, forms, iframes, objects and javascript: URLs', () => {
    expect(texts(`<div xmlns="${XHTML}"><p onclick="steal()">x</p></div>`)[0]).toContain('attribute onclick on <p>');
    expect(texts(`<div xmlns="${XHTML}"><form><input/></form></div>`).join()).toContain('element <form>');
    expect(texts(`<div xmlns="${XHTML}"><iframe src="http://x"></iframe></div>`).join()).toContain('element <iframe>');
    expect(texts(`<div xmlns="${XHTML}"><object data="x">y</object></div>`).join()).toContain('element <object>');
    expect(texts(`<div xmlns="${XHTML}"><a href=" JavaScript:alert(1)">x</a></div>`).join()).toContain('active content');
    expect(texts(`<div xmlns="${XHTML}"><img src="data:text/html;base64,PHNjcmlwdD4="/></div>`).join()).toContain('active content');
    expect(errors(`<div xmlns="${XHTML}"><img src="data:image/png;base64,iVBORw0KGgo="/></div>`)).toEqual([]);
  });

  it('requires a well-formed single <div> in the XHTML namespace', () => {
    expect(texts(`<div xmlns="${XHTML}"><p>x</div>`)[0]).toContain('not well-formed');
    expect(texts('just text')[0]).toContain('not well-formed');
    expect(texts('<div>x</div>')[0]).toContain('XHTML namespace');
    expect(texts(`<p xmlns="${XHTML}">x</p>`)[0]).toContain('single <div');
    expect(texts(`<div xmlns="${XHTML}">x</div><div xmlns="${XHTML}">y</div>`)[0]).toContain('not well-formed');
    // HTML named entities are not XML: the message says what to use instead
    expect(texts(`<div xmlns="${XHTML}">a&nbsp;b</div>`)[0]).toContain('&#160;');
  });

  it('requires some content (txt-2)', () => {
    expect(texts(`<div xmlns="${XHTML}">   <p> </p></div>`)).toEqual([expect.stringMatching(/^Constraint failed: txt-2/)]);
    expect(errors(`<div xmlns="${XHTML}"><img src="#x"/></div>`)).toEqual([]);
  });

  it('checks contained resources and is skipped for them with validateContains IGNORE', () => {
    const carePlan = {
      resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: '#p' },
      contained: [{ resourceType: 'Patient', id: 'p', text: { status: 'generated', div: `<div xmlns="${XHTML}"><script>x</script></div>` } }],
    };
    const issues = validateResource(carePlan).filter((i) => i.details?.text?.includes('txt-1'));
    expect(issues.map((i) => i.expression?.[0])).toEqual(['CarePlan.contained[0].text.div']);
    expect(validateResource(carePlan, { validateContains: 'IGNORE' })).toEqual([]);
  });
});
