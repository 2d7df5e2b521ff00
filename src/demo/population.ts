/**
 * A small synthetic Norway: organisations, health personnel and citizens that the embedded
 * identity provider lets you log in as, and that the demo data (issue 4) gives plans. Every
 * national id is a synthetic Tenor number (month + 80) generated with valid check digits, every
 * organisation number passes mod 11, so nothing here can ever be a real person or business.
 */
import { orgNrFrom, syntheticNin } from '../no/identifiers.js';

export interface DemoOrganisation {
  key: string;
  name: string;
  /** Name of the legal entity (hovedenhet) the point of care belongs to. */
  legalEntity: string;
  /** Legal entity (hovedenhet). */
  orgnrParent: string;
  /** Point of care (underenhet / behandlingssted). */
  orgnrChild: string;
  kind: 'gp' | 'municipality' | 'hospital' | 'physiotherapy';
  phone: string;
}

export interface DemoClinician {
  key: string;
  name: { given: string; family: string };
  pid: string;
  hpr: string;
  /** Volven 9060 personnel category code (LE = lege, SP = sykepleier, FT = fysioterapeut). */
  role: string;
  roleDisplay: string;
  organisation: string;
  title: string;
}

export interface DemoCitizen {
  key: string;
  name: { given: string; family: string };
  pid: string;
  birthDate: string;
  gender: 'female' | 'male';
  /** Short description for the login page. */
  about: string;
}

/** Someone a citizen may act for on Helsenorge. */
export interface DemoRepresentation {
  representative: string;
  represented: string;
  basis: 'FORELDREREPRESENTASJON' | 'FULLMAKT';
  /** For FULLMAKT: the service areas granted (innsyn = see, endre = register or change). */
  scope?: Array<'innsyn' | 'endre'>;
}

const org = (
  key: string,
  name: string,
  legalEntity: string,
  parentStem: string,
  childStem: string,
  kind: DemoOrganisation['kind'],
  phone: string,
): DemoOrganisation => ({
  key,
  name,
  legalEntity,
  orgnrParent: orgNrFrom(parentStem),
  orgnrChild: orgNrFrom(childStem),
  kind,
  phone,
});

export const organisations: DemoOrganisation[] = [
  org('lillevik-legekontor', 'Lillevik legekontor', 'Lillevik legekontor AS', '91000010', '91000020', 'gp', '+47 77 00 10 00'),
  org('nordby-hjemmetjeneste', 'Nordby kommune, hjemmetjenesten sone nord', 'Nordby kommune', '91000110', '91000120', 'municipality', '+47 77 00 20 00'),
  org('nordby-koordinerende', 'Nordby kommune, koordinerende enhet', 'Nordby kommune', '91000110', '91000130', 'municipality', '+47 77 00 20 50'),
  org('helse-nordvest-lunge', 'Helse Nord-Vest HF, lungemedisinsk avdeling', 'Helse Nord-Vest HF', '91000210', '91000220', 'hospital', '+47 77 00 30 00'),
  org('helse-nordvest-hjerte', 'Helse Nord-Vest HF, hjertemedisinsk avdeling', 'Helse Nord-Vest HF', '91000210', '91000230', 'hospital', '+47 77 00 31 00'),
  org('nordby-fysio', 'Nordby fysioterapi', 'Nordby fysioterapi AS', '91000310', '91000320', 'physiotherapy', '+47 77 00 40 00'),
];

const clinician = (
  key: string,
  given: string,
  family: string,
  birthDate: string,
  hpr: string,
  role: string,
  roleDisplay: string,
  organisation: string,
  title: string,
): DemoClinician => ({ key, name: { given, family }, pid: syntheticNin(birthDate, 11), hpr, role, roleDisplay, organisation, title });

export const clinicians: DemoClinician[] = [
  clinician('fastlege', 'Kari', 'Lindqvist', '1975-04-17', '9144901', 'LE', 'Lege', 'lillevik-legekontor', 'Fastlege'),
  clinician('hjemmesykepleier', 'Ola', 'Pedersen', '1982-09-03', '9144902', 'SP', 'Sykepleier', 'nordby-hjemmetjeneste', 'Sykepleier i hjemmetjenesten'),
  clinician('koordinator', 'Ingrid', 'Solberg', '1979-01-22', '9144903', 'SP', 'Sykepleier', 'nordby-koordinerende', 'Koordinator'),
  clinician('lungelege', 'Erik', 'Hansen', '1970-12-01', '9144904', 'LE', 'Lege', 'helse-nordvest-lunge', 'Overlege, lungemedisin'),
  clinician('kardiolog', 'Aisha', 'Rahman', '1984-06-30', '9144905', 'LE', 'Lege', 'helse-nordvest-hjerte', 'Overlege, kardiologi'),
  clinician('fysioterapeut', 'Siri', 'Bakke', '1990-02-14', '9144906', 'FT', 'Fysioterapeut', 'nordby-fysio', 'Fysioterapeut'),
  clinician('vikarlege', 'Tor', 'Vik', '1988-07-07', '9144907', 'LE', 'Lege', 'lillevik-legekontor', 'Vikarlege (blokkert av Anne Nilsen)'),
];

const citizen = (key: string, given: string, family: string, birthDate: string, gender: DemoCitizen['gender'], about: string, serial = 21): DemoCitizen => ({
  key,
  name: { given, family },
  pid: syntheticNin(birthDate, serial),
  birthDate,
  gender,
  about,
});

/** Ages are relative to 2026; the child and the teenager keep their ages for years. */
export const citizens: DemoCitizen[] = [
  citizen('anne', 'Anne', 'Nilsen', '1948-03-12', 'female', '78 år, KOLS'),
  citizen('bjorn', 'Bjørn', 'Johansen', '1955-10-05', 'male', '71 år, hjertesvikt'),
  citizen('dagny', 'Dagny', 'Olsen', '1963-05-19', 'female', '63 år, diabetes type 2'),
  citizen('eldar', 'Eldar', 'Berg', '1940-01-28', 'male', '86 år, skrøpelig eldre med flere sykdommer'),
  citizen('lilly', 'Lilly', 'Hauge', new Date().getUTCFullYear() - 8 + '-04-02', 'female', '8 år, astma'),
  citizen('marte', 'Marte', 'Hauge', '1989-08-21', 'female', 'mor til Lilly (8) og Jonas (14)'),
  citizen('jonas', 'Jonas', 'Hauge', new Date().getUTCFullYear() - 14 + '-01-15', 'male', '14 år'),
  citizen('hanne', 'Hanne', 'Nilsen', '1974-11-11', 'female', 'datter av Anne, har fullmakt'),
  citizen('gunnar', 'Gunnar', 'Lie', '1958-12-24', 'male', '67 år, har ikke samtykket til plan'),
];

export const representations: DemoRepresentation[] = [
  { representative: 'marte', represented: 'lilly', basis: 'FORELDREREPRESENTASJON' },
  { representative: 'marte', represented: 'jonas', basis: 'FORELDREREPRESENTASJON' },
  { representative: 'hanne', represented: 'anne', basis: 'FULLMAKT', scope: ['innsyn', 'endre'] },
];

export function organisation(key: string): DemoOrganisation {
  const found = organisations.find((o) => o.key === key);
  if (!found) throw new Error(`unknown demo organisation ${key}`);
  return found;
}

export function clinicianByKey(key: string): DemoClinician {
  const found = clinicians.find((c) => c.key === key);
  if (!found) throw new Error(`unknown demo clinician ${key}`);
  return found;
}

export function citizenByKey(key: string): DemoCitizen {
  const found = citizens.find((c) => c.key === key);
  if (!found) throw new Error(`unknown demo citizen ${key}`);
  return found;
}

