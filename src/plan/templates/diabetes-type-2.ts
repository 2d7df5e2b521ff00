/**
 * Diabetes type 2: behandlings- og egenbehandlingsplan.
 *
 * The reference found no Norwegian diabetes self-treatment plan (shared/reference/norway-context.md
 * §4.5, [unverified]): typical contents are sick-day rules, glucose thresholds for hypo- and
 * hyperglycaemia with actions, and when to call. The content below follows that outline with
 * common practice; where a number is not backed by the reference it says so next to it. The
 * HbA1c target (53 mmol/mol or lower for most) and 150 minutes of activity a week are the usual
 * Norwegian recommendations (Helsedirektoratet), not quoted in the reference.
 */
import {
  whatMatters,
  buildTemplate,
  daily,
  DHO_SOURCE,
  EMERGENCY_113,
  hours,
  immediately,
  LEGEVAKT,
  MEASUREMENT,
  months,
  quantity,
  type TemplateSpec,
  timing,
  USAGE_COMMON,
  weekly,
  yearly,
} from './build.js';

export const diabetesType2Spec: TemplateSpec = {
  key: 'diabetes-type-2',
  title: 'Behandlingsplan og egenbehandlingsplan ved diabetes type 2',
  subtitle: 'Mal fra Samplan – tilpasses pasienten',
  description:
    'Mal for en felles behandlingsplan og egenbehandlingsplan for pasienter med diabetes type 2: pasientens egne mål, ' +
    'mål for langtidsblodsukker, daglige tiltak (medisiner, blodsukkermåling, kosthold, fysisk aktivitet, fotstell, livsstil, ' +
    'psykisk helse), kontroller, og tre soner for høyt og lavt blodsukker med sykedagsregler.',
  purpose:
    'Planen hjelper deg å leve godt med diabetes: hva som er viktig for deg, hva du gjør hver dag, og hva du gjør når ' +
    'blodsukkeret blir for høyt eller for lavt, eller når du er syk.',
  usage:
    `${USAGE_COMMON} For diabetes type 2: fyll inn medisiner med navn og dose, pasientens blodsukkermål og HbA1c-mål, hvor ofte ` +
    'pasienten skal måle blodsukkeret, og sykedagsreglene: hvilke medisiner som settes på pause (for eksempel metformin, ' +
    'SGLT2-hemmere, vanndrivende og ACE-hemmere/angiotensin II-antagonister) og hva pasienten gjør med insulin. ' +
    'Føling er bare aktuelt for pasienter som bruker insulin eller sulfonylurea; ellers kan det tas ut.',
  condition: {
    text: 'Diabetes type 2',
    icd10: { code: 'E11', display: 'Diabetes mellitus type 2' },
    icpc2: { code: 'T90', display: 'Diabetes type 2' },
    snomed: { code: '44054006', display: 'diabetes mellitus type 2' },
  },
  goals: [
    whatMatters('å ha overskudd til å gå på tur med venner, og å unngå senskader.'),
    {
      id: 'hba1c',
      priority: 'high-priority',
      description: 'Langtidsblodsukker (HbA1c) på eller under målet som er avtalt med meg – for de fleste 53 mmol/mol eller lavere.',
      target: [{ measure: MEASUREMENT.hba1c, detailRange: { high: quantity(53, 'mmol/mol') }, due: months(6) }],
    },
    {
      id: 'trygg',
      priority: 'high-priority',
      description: 'Unngå alvorlig føling og svært høyt blodsukker som krever legevakt eller sykehus.',
    },
    {
      id: 'aktivitet',
      priority: 'medium-priority',
      description: 'Være fysisk aktiv minst 150 minutter i uken.',
    },
  ],
  measures: [
    {
      key: 'diabetesmedisiner',
      title: 'Diabetesmedisiner',
      description: 'Ta diabetesmedisinene hver dag som forskrevet. Navn og dose: fylles ut av legen.',
      category: 'medication',
      timing: daily('Hver dag, som forskrevet'),
      performer: 'patient',
      goals: ['hba1c'],
    },
    {
      key: 'blodsukker',
      title: 'Måle blodsukker',
      description:
        'Mål blodsukkeret som avtalt, for eksempel før frokost 2–3 dager i uken. Mål oftere når du er syk, har føling eller har ' +
        'fått nye medisiner. Skriv ned verdiene. Dine blodsukkermål: fylles ut av legen.',
      category: 'measurement',
      timing: weekly('Som avtalt, for eksempel før frokost 2–3 dager i uken', 2, { frequencyMax: 3, when: ['ACM'] }),
      performer: 'patient',
      goals: ['hba1c', 'trygg'],
    },
    {
      key: 'hba1c',
      title: 'Langtidsblodsukker (HbA1c)',
      description: 'Blodprøve av langtidsblodsukkeret hver 3.–6. måned.',
      category: 'measurement',
      timing: timing('Hver 3.–6. måned', { frequency: 1, period: 3, periodMax: 6, periodUnit: 'mo' }),
      performer: { role: 'Fastlege' },
      goals: ['hba1c'],
    },
    {
      key: 'arskontroll',
      title: 'Årskontroll hos fastlegen',
      description:
        'Én gang i året: blodtrykk, kolesterol, nyrefunksjon og urinprøve, undersøkelse av føttene, og gjennomgang av medisinene og ' +
        'denne planen. Øyelege hvert 1.–2. år.',
      category: 'measurement',
      timing: yearly('Én gang i året'),
      performer: { role: 'Fastlege' },
    },
    {
      key: 'fotter',
      title: 'Se etter sår på føttene',
      description: 'Se på føttene dine hver dag: sår, rifter, gnagsår, rødhet eller hevelse. Har du et sår som ikke gror, kontakt fastlegen.',
      category: 'measurement',
      timing: daily('Hver dag'),
      performer: 'patient',
      goals: ['hva-er-viktig'],
    },
    {
      key: 'kosthold',
      title: 'Kosthold',
      description:
        'Spis regelmessige måltider med mye grønnsaker, frukt og bær, grove kornprodukter, fisk og belgvekster. Begrens sukker, ' +
        'søte drikker og bearbeidet kjøtt. Spør gjerne om kurs eller time hos klinisk ernæringsfysiolog.',
      category: 'diet',
      timing: daily('Hver dag'),
      performer: 'patient',
      goals: ['hba1c'],
    },
    {
      key: 'fysisk-aktivitet',
      title: 'Fysisk aktivitet',
      description:
        'Vær i aktivitet minst 150 minutter i uken, for eksempel rask gange 30 minutter 5 dager i uken, og sitt ikke stille for ' +
        'lenge av gangen.',
      category: 'activity',
      timing: weekly('Minst 30 minutter, 5 dager i uken', 5, { duration: 30, durationUnit: 'min' }),
      performer: 'patient',
      goals: ['aktivitet', 'hba1c'],
    },
    {
      key: 'livsstil',
      title: 'Røyk, snus og alkohol',
      description: 'Ikke røyk eller snus, og vær forsiktig med alkohol. Røyker du, kan fastlegen hjelpe deg å slutte.',
      category: 'lifestyle',
      timing: daily('Hver dag'),
      performer: 'patient',
    },
    {
      key: 'psykisk-helse',
      title: 'Samtale om hvordan du har det',
      description:
        'Det kan være krevende å leve med diabetes. Snakk med fastlegen hvis du er mye bekymret, nedstemt eller sliten av diabetesen.',
      category: 'mentalHealth',
      timing: yearly('Ved årskontrollen, og ellers når du trenger det'),
      performer: { role: 'Fastlege' },
    },
  ],
  zones: [
    {
      level: 'green',
      title: 'Grønn sone – som vanlig',
      criteria: 'Blodsukkeret er stort sett innenfor målene du har avtalt med legen, og du føler deg som vanlig.',
      symptoms: [
        'Du føler deg som vanlig',
        'Blodsukkeret er innenfor målene dine (for mange 4–7 mmol/L før frokost og under 10 mmol/L etter måltider)',
      ],
      actions: [
        'Ta diabetesmedisinene som avtalt',
        'Spis regelmessig og variert',
        'Vær i aktivitet hver dag',
        'Se på føttene dine hver dag',
        'Mål blodsukkeret som avtalt',
      ],
      contacts: [{ who: 'Fastlegen – kontroll hver 3.–6. måned og årskontroll, eller når du har spørsmål', within: months(6) }],
    },
    {
      level: 'yellow',
      title: 'Gul sone – blodsukkeret er for høyt eller for lavt, eller du er syk',
      criteria:
        'Blodsukkeret er over 15 mmol/L to ganger på rad, du har føling (blodsukker under 4 mmol/L med plager), ' +
        'eller du er syk med feber, oppkast eller diaré.',
      symptoms: [
        'Du er mer tørst enn vanlig og tisser mye',
        'Du er uvanlig trøtt eller slapp',
        'Føling: svette, skjelving, hjertebank, sult, uro eller plutselig endret humør (kan skje hvis du bruker insulin eller sulfonylurea, for eksempel glimepirid)',
        'Du er syk med feber, oppkast eller diaré',
      ],
      // 15 mmol/L "twice in a row" and below 4 mmol/L with symptoms are the thresholds the brief
      // and common practice use; the reference has no Norwegian source for them (§4.5). A
      // threshold here is one measurement; "twice in a row" is in the criteria text.
      thresholds: [
        { measurement: MEASUREMENT.glucose, comparator: '>', value: quantity(15, 'mmol/L') },
        { measurement: MEASUREMENT.glucose, comparator: '<', value: quantity(4, 'mmol/L') },
      ],
      actions: [
        'Føling (under 4 mmol/L): ta noe med sukker med en gang, for eksempel 2 dl juice eller saft med sukker, eller 4–6 druesukkertabletter. Mål igjen etter 15 minutter, og gjenta hvis blodsukkeret fortsatt er under 4. Spis så et måltid eller en brødskive',
        'Høyt blodsukker (over 15 mmol/L): drikk rikelig med vann eller annen drikke uten sukker, og mål blodsukkeret igjen om 3–4 timer',
        'Når du er syk: drikk litt og ofte, mål blodsukkeret hver 3.–4. time, og følg sykedagsreglene under medisiner',
        'Bruker du insulin: ikke slutt med insulinet – ring legen for å få hjelp til å justere dosen',
      ],
      // Sick-day rules (pausing metformin, SGLT2 inhibitors, diuretics, ACE inhibitors/ARBs while
      // dehydrated) are international practice; the list is individual and is filled in by the GP.
      medications: [
        'Sykedagsregler: når du er syk og ikke får i deg nok mat og drikke, ta pause med disse medisinene til du spiser og drikker normalt igjen – fylles ut av legen',
      ],
      contacts: [
        {
          who: 'Fastlegen – hvis blodsukkeret er over 15 mmol/L to ganger på rad, hvis du har hatt føling uten å vite hvorfor, eller hvis du har vært syk i mer enn ett døgn',
          within: hours(24),
        },
        LEGEVAKT('når fastlegen er stengt og du blir verre', hours(24)),
      ],
      emergency: false,
    },
    {
      level: 'red',
      title: 'Rød sone – fare',
      criteria: 'Du har faretegn på svært lavt eller svært høyt blodsukker. Få hjelp med en gang.',
      symptoms: [
        'Alvorlig føling: du klarer ikke å spise eller drikke selv, blir forvirret, får kramper eller blir bevisstløs',
        'Blodsukkeret er over 20 mmol/L og går ikke ned, og du kaster opp, er svært tørst, eller blir svært trøtt eller forvirret',
        'Tung eller rask pust, magesmerter og kvalme – særlig hvis du bruker SGLT2-hemmer (for eksempel empagliflozin eller dapagliflozin), også når blodsukkeret ikke er så høyt',
      ],
      // 20 mmol/L is a pragmatic red line, not from the reference; evidence for the exact
      // number is thin. Danger signs (confusion, vomiting, ketoacidosis symptoms) decide.
      thresholds: [{ measurement: MEASUREMENT.glucose, comparator: '>', value: quantity(20, 'mmol/L') }],
      actions: [
        'Er du bevisstløs eller har kramper, skal de rundt deg ringe 113, legge deg i stabilt sideleie og ikke gi deg mat eller drikke',
        'Har du glukagon og noen rundt deg har lært å bruke det, skal de gi det ved alvorlig føling',
        'Svært høyt blodsukker med oppkast, stor tørste eller forvirring: ring legevakten 116 117 med en gang, eller 113 hvis du er svært dårlig',
        'Ha medisinlisten og denne planen klar',
      ],
      contacts: [EMERGENCY_113, LEGEVAKT('ved svært høyt blodsukker med oppkast, stor tørste eller forvirring (ring 113 hvis du er svært dårlig)', immediately)],
      emergency: true,
    },
  ],
  sources: [
    DHO_SOURCE,
    { type: 'documentation', display: 'Helsedirektoratet: Nasjonal faglig retningslinje for diabetes', url: 'https://www.helsedirektoratet.no/retningslinjer/diabetes' },
  ],
};

export const diabetesType2 = buildTemplate(diabetesType2Spec);
