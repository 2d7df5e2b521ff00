import { describe, expect, it } from 'vitest';
import { looksLikeHtml } from '../../src/fhir/validation/security.js';
import { validateResource } from '../../src/fhir/validation/validator.js';

describe('HTML in text values', () => {
  it('accepts ordinary clinical text with comparisons', () => {
    for (const text of ['SpO2 < 92 %', 'x<y', '<5 mmol/l', '>= 3 times', 'a<b and c>d', 'BT <140/90', 'p<0.05', 'Hb < 10 g/dl, CRP > 50', '<- pil', '5 << 6', '<<ikke>>', 'i <= 2']) {
      expect(looksLikeHtml(text), text).toBe(false);
    }
  });

  it('rejects tag-like text made of real HTML element names', () => {
    for (const text of [
      '<script>alert(1)</script>', '<img src=x onerror=alert(1)>', '<iframe', 'tekst </SCRIPT>', '<svg/onload=alert(1)>',
      '<a href="http://evil">klikk</a>', '<b>fet</b>', 'linje<br/>linje', '<p>', '<td colspan=2>', '<x onclick="a()">',
    ]) {
      expect(looksLikeHtml(text), text).toBe(true);
    }
  });

  it('reports the element, in strings, markdown and extension values, but not the narrative', () => {
    const patient = {
      resourceType: 'Patient',
      text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><b>ok</b></div>' },
      name: [{ text: 'SpO2 < 92 %', given: ['<img src=x onerror=alert(1)>'] }],
      extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-congregation', valueString: '<script>x</script>' }],
    };
    const issues = validateResource(patient).filter((i) => i.severity === 'error');
    expect(issues.map((i) => i.expression?.[0]).sort()).toEqual(['Patient.extension[0].valueString', 'Patient.name[0].given[0]']);
    expect(issues[0]?.details?.text).toContain('embedded HTML tags');
    const plan = { resourceType: 'CarePlan', status: 'active', intent: 'plan', subject: { reference: 'Patient/p' }, note: [{ text: '**Viktig** <b>x</b>' }] };
    expect(validateResource(plan).map((i) => i.expression?.[0])).toEqual(['CarePlan.note[0].text']);
  });
});
