/**
 * The patient's access log in plain words: each AuditEvent a citizen sees gets a short bokmål
 * narrative — who (name, profession, organisation), did what, when (Norwegian time), and on what
 * grounds — so the log reads like "Kari Lindqvist (lege, Lillevik legekontor) så på planen din
 * 26. november 2026 kl. 10:15, med ditt samtykke."
 */
import type { AuditEvent } from '@medplum/fhirtypes';
import { OID } from '../no/identifiers.js';
import { AUDIT_AGENT_TYPE, AUDIT_CODES } from './audit.js';

const PROFESSIONS: Record<string, string> = {
  LE: 'lege',
  SP: 'sykepleier',
  FT: 'fysioterapeut',
  ET: 'ergoterapeut',
  PS: 'psykolog',
  VP: 'vernepleier',
  HF: 'helsefagarbeider',
  HP: 'hjelpepleier',
  JO: 'jordmor',
  KE: 'klinisk ernæringsfysiolog',
  BI: 'bioingeniør',
  RA: 'radiograf',
  TL: 'tannlege',
};

const ACTIONS: Record<string, string> = {
  C: 'la til noe i planen din',
  R: 'så på planen din',
  U: 'endret planen din',
  D: 'slettet noe fra planen din',
  E: 'søkte i planen din',
};

/** Operations by name, where "searched" would not say what happened. */
const OPERATIONS: Record<string, string> = {
  $publish: 'gjorde en ny versjon av planen synlig for deg',
  $approval: 'behandlet godkjenning av planen din',
  $apply: 'lagde et utkast til plan for deg fra en mal',
  $versions: 'så på tidligere versjoner av planen din',
  $diff: 'sammenlignet versjoner av planen din',
  $export: 'bestilte en kopi av planen din (eksport)',
  '$export-file': 'lastet ned en kopi av planen din (eksport)',
  '$export-status': 'avbrøt eller slettet en eksport av planen din',
  '$nhn-plan': 'hentet eller endret egenbehandlingsplanen din',
};

const BASES: Record<string, string> = {
  UNNTAK: 'uten samtykke, slik loven gir helsepersonell som fastlegen adgang til',
  SAMTYKKE: 'med ditt samtykke',
  AKUTT: 'i en akutt situasjon',
  FORHOYET_SAMTYKKE: 'med ditt samtykke til å se opplysninger du har begrenset',
  FORHOYET_AKUTT: 'i en akutt situasjon, til opplysninger du har begrenset',
};

const REPRESENTATION: Record<string, string> = {
  SEGSELV: '',
  FORELDREREPRESENTASJON: ' som forelder',
  FULLMAKT: ' med fullmakt',
  VERGEMAL: ' som verge',
};

const when = new Intl.DateTimeFormat('nb-NO', { timeZone: 'Europe/Oslo', dateStyle: 'long', timeStyle: 'short' });

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One sentence about one record, in plain bokmål. `organisations` maps organisation numbers to names. */
export function describeAccess(event: AuditEvent, organisations: ReadonlyMap<string, string>): string {
  const user = event.agent?.find((a) => a.requestor);
  const name = user?.who?.display ?? 'Noen';
  const personnel = user?.who?.identifier?.system === OID.hpr;
  const roleCode = user?.role?.[0]?.coding?.[0]?.code ?? '';
  const pointOfCare = event.agent?.find((a) => a.type?.coding?.some((c) => c.system === AUDIT_CODES.agentType && c.code === AUDIT_AGENT_TYPE.pointOfCare.code))?.who?.identifier?.value;
  const where = pointOfCare ? (organisations.get(pointOfCare) ?? `organisasjonsnummer ${pointOfCare}`) : undefined;
  const who = personnel
    ? `${name} (${[PROFESSIONS[roleCode] ?? 'helsepersonell', where].filter(Boolean).join(', ')})`
    : `${name}${REPRESENTATION[roleCode] ?? ''}`;
  const operation = event.subtype?.find((c) => c.system === 'urn:ietf:rfc:3986')?.display;
  const done = (operation && OPERATIONS[operation]) ?? ACTIONS[event.action ?? 'E'] ?? ACTIONS.E;
  const what = event.outcome === '0' ? done : `prøvde å se eller endre planen din, men fikk ikke lov`;
  const at = event.recorded ? when.format(new Date(event.recorded)) : '';
  const basisCode = event.purposeOfEvent?.[0]?.coding?.find((c) => c.system === AUDIT_CODES.accessBasis)?.code;
  const basis = basisCode ? BASES[basisCode] : undefined;
  const reason = event.purposeOfEvent?.[0]?.text;
  return `${who} ${what} ${at}${basis ? `, ${basis}` : ''}${reason ? ` (begrunnelse: ${reason})` : ''}.`;
}

/** The event with its plain-language narrative. */
export function withNarrative(event: AuditEvent, organisations: ReadonlyMap<string, string>): AuditEvent {
  return {
    ...event,
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${escape(describeAccess(event, organisations))}</p></div>` },
  };
}
