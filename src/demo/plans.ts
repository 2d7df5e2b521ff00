/**
 * What the demo patients' plans say: diagnoses, care teams, relatives, the patient's own goal, the
 * individual content a clinician fills in on top of a template (medicines and doses, personal
 * baselines), extra goals and measures, who approves, and a few days of check-ins. Only clinical
 * content lives here, in small shapes keyed by the people of `population.ts`; `seed.ts` turns it
 * into FHIR through the server's own API (`$apply`, transactions, `$publish`, `$approval`).
 *
 * All of it is synthetic. Medicines and doses are ordinary Norwegian choices for the condition,
 * written the way a GP would write them for this patient; they are examples, not advice.
 */
import type { Timing } from '@medplum/fhirtypes';
import type { ZoneLevel } from '../plan/conventions.js';
import { daily, MEASUREMENT, type MeasureCategory, timing, weekly } from '../plan/templates/build.js';

type Code = readonly [code: string, display: string];

export interface DemoDiagnosis {
  /** Referred to by extra goals and measures of the same plan. */
  key: string;
  text: string;
  icd10?: Code;
  icpc2?: Code;
  snomed?: Code;
  /** Year (or date) of onset. */
  onset: string;
  /** The clinician (population key) who made the diagnosis. */
  recorder: string;
}

export interface DemoRelative {
  key: string;
  name: { given: string; family: string };
  /** v3 RoleCode: DAUC daughter, MTH mother, SONC son, WIFE … */
  relationship: Code;
  phone: string;
}

export type DemoTeamMember =
  | { clinician: string; role: string }
  | { relative: string; role: string }
  | { patient: true; role: string };

export interface DemoMeasure {
  title: string;
  description: string;
  category: MeasureCategory;
  timing: Timing;
  /** Who does it: a clinician of the care team (population key). */
  performer: string;
  /** Diagnosis keys. */
  reasons: string[];
}

export interface DemoGoal {
  description: string;
  priority: 'high-priority' | 'medium-priority' | 'low-priority';
  /** Diagnosis key. */
  addresses: string;
}

export interface DemoCheckIn {
  daysAgo: number;
  /** Minutes before the time of day the seed runs, so the newest check-in is never in the future. */
  minutesEarlier: number;
  zone: ZoneLevel;
  measurements?: Array<{ measurement: keyof typeof MEASUREMENT; value: number; unit: string }>;
  note?: string;
}

export interface DemoPlan {
  /** The patient (citizen key). */
  patient: string;
  /** The template applied (its key: kols, astma, hjertesvikt, diabetes-type-2). */
  template: string;
  /** The clinician who applies the template, fills it in and publishes it. */
  author: string;
  /** The patient's GP (fastlege): Patient.generalPractitioner. */
  gp: string;
  /** How many days ago the plan was agreed (CarePlan.period.start). */
  agreedDaysAgo: number;
  /** The first is the condition the template is for: `$apply` addresses it instead of making a provisional one. */
  diagnoses: DemoDiagnosis[];
  relatives: DemoRelative[];
  careTeam: DemoTeamMember[];
  /** "Hva er viktig for meg", in the patient's words. */
  ownGoal: string;
  extraGoals?: DemoGoal[];
  /**
   * The individual content of the template's measures, by measure key: the sentence of the
   * template's instruction that says «fylles ut …» is replaced by this.
   */
  fillIn: Record<string, string>;
  extraMeasures?: DemoMeasure[];
  /** Zone medications (replacing the template's placeholders), and sentences replacing «fylles ut …» in the zone's other texts ('' removes it). */
  zones: Partial<Record<ZoneLevel, { medications?: string[]; fillIn?: string[] }>>;
  /** Personal baselines for thresholds given in percent of the patient's best value. */
  baselines?: Array<{ measurement: keyof typeof MEASUREMENT; value: number; unit: string }>;
  note: string;
  /** Patient-only privacy settings besides the plan consent: clinicians the patient has blocked. */
  blocked?: string[];
  approval: { requestedBy?: string; givenBy?: string; comment?: string };
  /** The citizen who acts in the portal — consents, sends the check-ins: the patient, or a parent for a child. */
  citizen: string;
  checkIns: DemoCheckIn[];
}

/** Citizens registered as patients without any plan (no consent): the refusals can be tried on them. */
export const PATIENTS_WITHOUT_PLAN: ReadonlyArray<{ patient: string; gp: string }> = [{ patient: 'gunnar', gp: 'fastlege' }];

export const DEMO_PLANS: readonly DemoPlan[] = [
  {
    patient: 'anne',
    template: 'kols',
    author: 'fastlege',
    gp: 'fastlege',
    agreedDaysAgo: 42,
    diagnoses: [
      {
        key: 'kols',
        text: 'KOLS, alvorlighetsgrad 3',
        icd10: ['J44.9', 'Kronisk obstruktiv lungesykdom, uspesifisert'],
        icpc2: ['R95', 'Kronisk obstruktiv lungesykdom'],
        snomed: ['13645005', 'kronisk obstruktiv lungesykdom'],
        onset: '2014',
        recorder: 'lungelege',
      },
      {
        key: 'hypertensjon',
        text: 'Høyt blodtrykk',
        icd10: ['I10', 'Essensiell (primær) hypertensjon'],
        icpc2: ['K86', 'Hypertensjon ukomplisert'],
        snomed: ['59621000', 'essensiell hypertensjon'],
        onset: '2009',
        recorder: 'fastlege',
      },
    ],
    relatives: [{ key: 'hanne', name: { given: 'Hanne', family: 'Nilsen' }, relationship: ['DAUC', 'daughter'], phone: '+47 400 00 102' }],
    careTeam: [
      { clinician: 'fastlege', role: 'Fastlege' },
      { clinician: 'hjemmesykepleier', role: 'Hjemmesykepleien' },
      { clinician: 'lungelege', role: 'Lungelege, spesialisthelsetjenesten' },
      { clinician: 'fysioterapeut', role: 'Fysioterapeut' },
      { relative: 'hanne', role: 'Pårørende (datter, har fullmakt)' },
    ],
    ownGoal: 'Hva er viktig for meg: å gå tur med hunden Bamse rundt vannet hver dag, og å være med i konfirmasjonen til barnebarnet mitt i mai.',
    fillIn: {
      inhalasjonsmedisiner: 'Navn og dose: Spiolto Respimat (tiotropium/olodaterol) 2,5/2,5 mikrogram, 2 drag én gang daglig om morgenen.',
      anfallsmedisin: 'Navn og dose: Ventoline (salbutamol) 0,1 mg/dose, 1–2 drag ved behov, høyst 8 drag i døgnet.',
      oksygenmetning: 'Din vanlige verdi: 92–94 % i hvile.',
    },
    zones: {
      yellow: {
        medications: [
          'Prednisolon 5 mg: 6 tabletter (30 mg) hver morgen i 5 dager, fra beredskapspakken',
          'Amoksicillin 500 mg: 1 tablett 3 ganger daglig i 7 dager, fra beredskapspakken. Ta hele kuren',
        ],
      },
    },
    note: 'Planen er laget sammen med Anne og datteren Hanne på legekontoret. Beredskapspakke skrevet ut samme dag. Lungepoliklinikken har sett planen.',
    blocked: ['vikarlege'],
    approval: { givenBy: 'fastlege', comment: 'Gjennomgått med pasienten og datteren.' },
    citizen: 'anne',
    checkIns: [
      { daysAgo: 3, minutesEarlier: 40, zone: 'green', measurements: [{ measurement: 'spo2', value: 93, unit: '%' }] },
      { daysAgo: 2, minutesEarlier: 55, zone: 'green', measurements: [{ measurement: 'spo2', value: 93, unit: '%' }] },
      { daysAgo: 1, minutesEarlier: 35, zone: 'green', measurements: [{ measurement: 'spo2', value: 92, unit: '%' }], note: 'Litt forkjølet.' },
      // The patient still says green; the measurement (89 % < 90 %) puts her in the yellow zone.
      { daysAgo: 0, minutesEarlier: 20, zone: 'green', measurements: [{ measurement: 'spo2', value: 89, unit: '%' }], note: 'Mer slim i dag, litt gulere enn vanlig.' },
    ],
  },
  {
    patient: 'bjorn',
    template: 'hjertesvikt',
    author: 'kardiolog',
    gp: 'fastlege',
    agreedDaysAgo: 21,
    diagnoses: [
      {
        key: 'hjertesvikt',
        text: 'Hjertesvikt med redusert ejeksjonsfraksjon (EF 35 %)',
        icd10: ['I50.9', 'Hjertesvikt, uspesifisert'],
        icpc2: ['K77', 'Hjertesvikt'],
        snomed: ['84114007', 'hjertesvikt'],
        onset: '2023',
        recorder: 'kardiolog',
      },
      {
        key: 'iskemisk',
        text: 'Hjerteinfarkt for 3 år siden, kronisk iskemisk hjertesykdom',
        icd10: ['I25.2', 'Gammelt hjerteinfarkt'],
        icpc2: ['K76', 'Iskemisk hjertesykdom uten angina'],
        snomed: ['414545008', 'iskemisk hjertesykdom'],
        onset: '2023',
        recorder: 'kardiolog',
      },
    ],
    relatives: [{ key: 'randi', name: { given: 'Randi', family: 'Johansen' }, relationship: ['WIFE', 'wife'], phone: '+47 400 00 104' }],
    careTeam: [
      { clinician: 'kardiolog', role: 'Kardiolog, hjertesviktpoliklinikken' },
      { clinician: 'fastlege', role: 'Fastlege' },
      { relative: 'randi', role: 'Pårørende (kone)' },
    ],
    ownGoal: 'Hva er viktig for meg: å klare å gå opp bakken til hytta på Storvik, og å fiske med barnebarna i sommer.',
    fillIn: {
      veiing: 'Din tørrvekt (vekten når du har det bra): 84 kg.',
      hjertemedisiner:
        'Navn og dose: Entresto (sakubitril/valsartan) 49/51 mg morgen og kveld, Bisoprolol 5 mg om morgenen, Spironolakton 25 mg om morgenen, Forxiga (dapagliflozin) 10 mg om morgenen, Furix (furosemid) 40 mg om morgenen.',
      'salt-og-vaeske': 'Drikk høyst 1,5 liter per døgn, alt medregnet.',
    },
    zones: {
      yellow: { medications: ['Ekstra Furix (furosemid) 40 mg om ettermiddagen i 3 dager. Ring hjertesviktsykepleieren hvis vekten ikke har gått ned etter 3 dager'] },
    },
    note: 'Planen er laget ved hjertesviktpoliklinikken ved utskrivning og sendt fastlegen. Kontroll på poliklinikken om 3 måneder.',
    approval: { givenBy: 'kardiolog', comment: 'Godkjent ved utskrivning.' },
    citizen: 'bjorn',
    checkIns: [
      { daysAgo: 3, minutesEarlier: 90, zone: 'green', measurements: [{ measurement: 'weight', value: 84.2, unit: 'kg' }] },
      { daysAgo: 2, minutesEarlier: 80, zone: 'green', measurements: [{ measurement: 'weight', value: 84.0, unit: 'kg' }] },
      { daysAgo: 1, minutesEarlier: 85, zone: 'green', measurements: [{ measurement: 'weight', value: 84.3, unit: 'kg' }] },
      { daysAgo: 0, minutesEarlier: 95, zone: 'green', measurements: [{ measurement: 'weight', value: 84.1, unit: 'kg' }] },
    ],
  },
  {
    patient: 'dagny',
    template: 'diabetes-type-2',
    author: 'fastlege',
    gp: 'fastlege',
    agreedDaysAgo: 60,
    diagnoses: [
      {
        key: 'diabetes',
        text: 'Diabetes type 2',
        icd10: ['E11.9', 'Diabetes mellitus type 2 uten komplikasjoner'],
        icpc2: ['T90', 'Diabetes type 2'],
        snomed: ['44054006', 'diabetes mellitus type 2'],
        onset: '2019',
        recorder: 'fastlege',
      },
      {
        key: 'overvekt',
        text: 'Fedme (KMI 32)',
        icd10: ['E66.9', 'Fedme, uspesifisert'],
        icpc2: ['T82', 'Fedme'],
        snomed: ['414916001', 'fedme'],
        onset: '2015',
        recorder: 'fastlege',
      },
    ],
    relatives: [],
    careTeam: [
      { clinician: 'fastlege', role: 'Fastlege' },
      { clinician: 'fysioterapeut', role: 'Fysioterapeut (frisklivsgruppe)' },
    ],
    ownGoal: 'Hva er viktig for meg: å orke å gå Nordbyløypa med venninnene mine hver lørdag, og å slippe insulin.',
    fillIn: {
      diabetesmedisiner: 'Navn og dose: Metformin 1000 mg morgen og kveld, og Jardiance (empagliflozin) 10 mg om morgenen.',
      blodsukker: 'Dine blodsukkermål: 4–7 mmol/L før frokost og under 10 mmol/L to timer etter måltid.',
    },
    zones: {
      yellow: {
        medications: [
          'Sykedagsregler: når du er syk og ikke får i deg nok mat og drikke, ta pause med Metformin og Jardiance til du spiser og drikker normalt igjen. Start igjen når du har spist og drukket som vanlig i ett døgn',
        ],
      },
    },
    note: 'Planen er gjennomgått med Dagny ved årskontrollen. HbA1c 58 mmol/mol; nytt mål 53 mmol/mol om 6 måneder.',
    approval: { givenBy: 'fastlege' },
    citizen: 'dagny',
    checkIns: [
      { daysAgo: 4, minutesEarlier: 120, zone: 'green', measurements: [{ measurement: 'glucose', value: 6.8, unit: 'mmol/L' }] },
      { daysAgo: 2, minutesEarlier: 110, zone: 'green', measurements: [{ measurement: 'glucose', value: 7.4, unit: 'mmol/L' }] },
      { daysAgo: 0, minutesEarlier: 100, zone: 'green', measurements: [{ measurement: 'glucose', value: 6.1, unit: 'mmol/L' }] },
    ],
  },
  {
    // The frail elderly patient: several conditions, the municipality coordinates, the GP has
    // not yet approved the coordinator's latest version.
    patient: 'eldar',
    template: 'hjertesvikt',
    author: 'koordinator',
    gp: 'fastlege',
    agreedDaysAgo: 14,
    diagnoses: [
      {
        key: 'hjertesvikt',
        text: 'Hjertesvikt',
        icd10: ['I50.0', 'Kongestiv hjertesvikt'],
        icpc2: ['K77', 'Hjertesvikt'],
        snomed: ['42343007', 'kongestiv hjertesvikt'],
        onset: '2021',
        recorder: 'kardiolog',
      },
      {
        key: 'atrieflimmer',
        text: 'Kronisk atrieflimmer',
        icd10: ['I48.2', 'Kronisk atrieflimmer'],
        icpc2: ['K78', 'Atrieflimmer/flutter'],
        snomed: ['49436004', 'atrieflimmer'],
        onset: '2018',
        recorder: 'fastlege',
      },
      {
        key: 'demens',
        text: 'Lett demens',
        icd10: ['F03', 'Uspesifisert demens'],
        icpc2: ['P70', 'Demens'],
        snomed: ['52448006', 'demens'],
        onset: '2024',
        recorder: 'fastlege',
      },
      {
        key: 'artrose',
        text: 'Artrose i begge knær',
        icd10: ['M17.0', 'Primær bilateral kneleddsartrose'],
        icpc2: ['L90', 'Kneartrose'],
        snomed: ['239873007', 'artrose i kne'],
        onset: '2012',
        recorder: 'fastlege',
      },
      {
        key: 'fall',
        text: 'Fallrisiko: to fall hjemme siste halvår',
        icd10: ['R29.6', 'Tendens til fall, ikke klassifisert annet sted'],
        snomed: ['129839007', 'risiko for fall'],
        onset: '2026',
        recorder: 'hjemmesykepleier',
      },
    ],
    relatives: [{ key: 'sigrid', name: { given: 'Sigrid', family: 'Berg' }, relationship: ['DAUC', 'daughter'], phone: '+47 400 00 101' }],
    careTeam: [
      { clinician: 'koordinator', role: 'Koordinator, kommunen' },
      { clinician: 'fastlege', role: 'Fastlege' },
      { clinician: 'hjemmesykepleier', role: 'Hjemmesykepleien (primærkontakt)' },
      { clinician: 'fysioterapeut', role: 'Fysioterapeut' },
      { clinician: 'kardiolog', role: 'Kardiolog, spesialisthelsetjenesten' },
      { relative: 'sigrid', role: 'Pårørende (datter, nærmeste pårørende)' },
      { patient: true, role: 'Pasient' },
    ],
    ownGoal: 'Hva er viktig for meg: å bo hjemme i huset mitt på Berg så lenge som mulig, og å få besøk av oldebarna på søndager.',
    extraGoals: [
      { description: 'Ingen nye fall de neste 6 månedene.', priority: 'high-priority', addresses: 'fall' },
      { description: 'Spise nok: stabil vekt og minst tre måltider om dagen.', priority: 'medium-priority', addresses: 'demens' },
    ],
    fillIn: {
      veiing: 'Din tørrvekt (vekten når du har det bra): 71 kg. Hjemmesykepleien hjelper deg å veie deg.',
      hjertemedisiner:
        'Navn og dose: legemidlene kommer i multidose fra apoteket og gis av hjemmesykepleien. Furix (furosemid) 40 mg, Bisoprolol 2,5 mg og Eliquis (apiksaban) 2,5 mg morgen og kveld.',
      'salt-og-vaeske': 'Du har ingen grense for drikke, men drikk jevnt gjennom dagen, også når du ikke er tørst.',
    },
    extraMeasures: [
      {
        title: 'Legemidler i multidose, gitt av hjemmesykepleien',
        description: 'Hjemmesykepleien kommer morgen og kveld og gir deg medisinene fra multidoseposene, og ser at du har det bra.',
        category: 'medication',
        timing: daily('Morgen og kveld', { frequency: 2, when: ['MORN', 'EVE'] }),
        performer: 'hjemmesykepleier',
        reasons: ['hjertesvikt', 'atrieflimmer', 'demens'],
      },
      {
        title: 'Trening for bedre balanse og styrke',
        description: 'Fysioterapeuten kommer hjem til deg to ganger i uken. Gjør øvelsene for balanse og styrke i bena også de andre dagene, med støtte av kjøkkenbenken.',
        category: 'activity',
        timing: weekly('To ganger i uken med fysioterapeut, øvelser hver dag', 2),
        performer: 'fysioterapeut',
        reasons: ['fall', 'artrose'],
      },
      {
        title: 'Middag levert hjem, og vektkontroll',
        description: 'Kommunen leverer middag hver dag. Hjemmesykepleien ser at du spiser, og skriver ned vekten hver morgen.',
        category: 'diet',
        timing: daily('Hver dag'),
        performer: 'hjemmesykepleier',
        reasons: ['demens', 'hjertesvikt'],
      },
      {
        title: 'Trygghetsalarm og fallsikring hjemme',
        description: 'Bær trygghetsalarmen hele døgnet. Løse tepper er fjernet, og det er satt opp lys på vei til badet om natten.',
        category: 'lifestyle',
        timing: timing('Hele døgnet'),
        performer: 'koordinator',
        reasons: ['fall'],
      },
    ],
    zones: {
      yellow: { medications: ['Ekstra Furix (furosemid) 40 mg om ettermiddagen i 2 dager, gitt av hjemmesykepleien etter avtale med fastlegen'] },
    },
    note: 'Planen er laget på samarbeidsmøte hjemme hos Eldar med datteren Sigrid, hjemmesykepleien, fysioterapeuten og koordinator. Sendt fastlegen til godkjenning.',
    approval: { requestedBy: 'koordinator', comment: 'Ny versjon etter samarbeidsmøtet. Fastlegen bes se på vanndrivende i gul sone.' },
    citizen: 'eldar',
    checkIns: [
      { daysAgo: 3, minutesEarlier: 60, zone: 'green', measurements: [{ measurement: 'weight', value: 71.0, unit: 'kg' }] },
      { daysAgo: 2, minutesEarlier: 65, zone: 'green', measurements: [{ measurement: 'weight', value: 71.6, unit: 'kg' }] },
      { daysAgo: 1, minutesEarlier: 70, zone: 'green', measurements: [{ measurement: 'weight', value: 72.4, unit: 'kg' }] },
      {
        daysAgo: 0,
        minutesEarlier: 45,
        zone: 'yellow',
        measurements: [{ measurement: 'weight', value: 73.3, unit: 'kg' }],
        note: 'Mer hoven i bena og tyngre i pusten når jeg går til postkassen.',
      },
    ],
  },
  {
    patient: 'lilly',
    template: 'astma',
    author: 'fastlege',
    gp: 'fastlege',
    agreedDaysAgo: 30,
    diagnoses: [
      {
        key: 'astma',
        text: 'Allergisk astma',
        icd10: ['J45.0', 'Astma med overveiende allergisk komponent'],
        icpc2: ['R96', 'Astma'],
        snomed: ['195967001', 'astma'],
        onset: '2022',
        recorder: 'fastlege',
      },
      {
        key: 'pollenallergi',
        text: 'Pollenallergi (bjørk)',
        icd10: ['J30.1', 'Allergisk rhinitt forårsaket av pollen'],
        icpc2: ['R97', 'Allergisk rhinitt'],
        snomed: ['21719001', 'allergisk rhinitt forårsaket av pollen'],
        onset: '2021',
        recorder: 'fastlege',
      },
    ],
    relatives: [{ key: 'marte', name: { given: 'Marte', family: 'Hauge' }, relationship: ['MTH', 'mother'], phone: '+47 400 00 103' }],
    careTeam: [
      { clinician: 'fastlege', role: 'Fastlege' },
      { relative: 'marte', role: 'Mor (foreldreansvar)' },
    ],
    ownGoal: 'Hva er viktig for meg: å være med på fotballtreningen to ganger i uka og på klassetur uten å bli tung i pusten.',
    fillIn: {
      'forebyggende-medisin': 'Navn og dose: Flutide (flutikason) 50 mikrogram, 2 drag morgen og kveld med inhalasjonskammer.',
      anfallsmedisin: 'Navn og dose: Ventoline (salbutamol) 0,1 mg/dose, 2 drag med inhalasjonskammer ved behov.',
      pef: 'Din beste PEF-verdi (personlig beste): 260 L/min.',
    },
    zones: {
      yellow: {
        medications: [
          'Økt dose av den forebyggende medisinen: Flutide 4 drag morgen og kveld i 7 dager, så tilbake til 2 drag',
          'Prednisolon-tabletter skal bare brukes etter avtale med legen samme dag',
        ],
      },
      // Lilly's reliever is salbutamol, so the sentence about other relievers does not apply.
      red: { fillIn: [''] },
    },
    baselines: [{ measurement: 'peakFlow', value: 260, unit: 'L/min' }],
    note: 'Planen er laget sammen med Lilly og moren. Kopi til helsesykepleier på skolen etter avtale med mor.',
    approval: { givenBy: 'fastlege' },
    citizen: 'marte',
    checkIns: [
      { daysAgo: 2, minutesEarlier: 150, zone: 'green', measurements: [{ measurement: 'peakFlow', value: 245, unit: 'L/min' }] },
      { daysAgo: 1, minutesEarlier: 140, zone: 'green', measurements: [{ measurement: 'peakFlow', value: 250, unit: 'L/min' }] },
      { daysAgo: 0, minutesEarlier: 130, zone: 'green', measurements: [{ measurement: 'peakFlow', value: 238, unit: 'L/min' }], note: 'Litt hoste etter gymtimen.' },
    ],
  },
];
