/**
 * Astma (asthma): behandlings- og egenbehandlingsplan, for adults and children (a parent reads
 * the plan for a child under 12).
 *
 * Sources (shared/reference/norway-context.md §4.3): the Asthma + Lung UK action plan (everyday
 * care; "when I feel worse" with symptoms back, night waking, reliever 3+ times a week, peak flow
 * below about 80 % of best, see a GP within 24 h; an attack when the reliever is needed more
 * often than every 4 hours) and ERS Breathe (2–3 action points by % of personal best work:
 * below 80 % step up inhaled steroid, below 60 % oral steroid and advice, below 40 % urgent care;
 * symptom- and PEF-based action points work about equally well; a traffic-light layout is not
 * clearly better than plain written instructions — the zones are therefore written as plain
 * instructions, and colour is never the only signal).
 */
import {
  whatMatters,
  asNeeded,
  buildTemplate,
  daily,
  DHO_SOURCE,
  EMERGENCY_113,
  hours,
  LEGEVAKT,
  MEASUREMENT,
  type TemplateSpec,
  USAGE_COMMON,
  weekly,
  yearly,
  years,
} from './build.js';

export const astmaSpec: TemplateSpec = {
  key: 'astma',
  title: 'Behandlingsplan og egenbehandlingsplan ved astma',
  subtitle: 'Mal fra Samplan – tilpasses pasienten',
  description:
    'Mal for en felles behandlingsplan og egenbehandlingsplan for barn og voksne med astma: pasientens egne mål, ' +
    'daglige tiltak (forebyggende medisin, anfallsmedisin, PEF-måling, fysisk aktivitet, unngå utløsende faktorer) og tre soner ' +
    'med grenser i prosent av pasientens beste PEF-verdi.',
  purpose:
    'Planen hjelper deg å holde astmaen under kontroll: hva som er viktig for deg, hvilke medisiner du tar hver dag, ' +
    'og hva du gjør når astmaen blir verre eller du får et alvorlig anfall.',
  usage:
    `${USAGE_COMMON} For astma: fyll inn forebyggende medisin og anfallsmedisin med navn og dose (også om pasienten bruker samme ` +
    'inhalator til begge, for eksempel budesonid/formoterol), hvordan dosen økes i gul sone, om og hvordan prednisolon skal brukes, ' +
    'og pasientens beste PEF-verdi. Grensene 80 % og 50 % av beste PEF er standardverdier.',
  condition: {
    text: 'Astma',
    icd10: { code: 'J45', display: 'Astma' },
    icpc2: { code: 'R96', display: 'Astma' },
    snomed: { code: '195967001', display: 'astma' },
  },
  goals: [
    whatMatters('å kunne spille fotball og være med på turer uten å måtte stoppe på grunn av pusten.'),
    {
      id: 'kontroll',
      priority: 'high-priority',
      description: 'God kontroll på astmaen: lite plager, sove hele natten, og bruke anfallsmedisin 2 ganger i uken eller sjeldnere.',
    },
    {
      id: 'ingen-alvorlige-anfall',
      priority: 'high-priority',
      description: 'Ingen alvorlige astmaanfall som krever legevakt eller sykehus.',
    },
  ],
  measures: [
    {
      key: 'forebyggende-medisin',
      title: 'Forebyggende astmamedisin',
      description:
        'Ta den forebyggende medisinen (inhalasjonssteroid) hver dag, også når du er bra. Skyll munnen etterpå. ' +
        'Navn og dose: fylles ut av legen.',
      category: 'medication',
      timing: daily('Hver dag, som forskrevet (1–2 ganger daglig)', { frequencyMax: 2 }),
      performer: 'patient',
      goals: ['kontroll', 'ingen-alvorlige-anfall'],
    },
    {
      key: 'anfallsmedisin',
      title: 'Anfallsmedisin ved behov',
      description:
        'Bruk anfallsmedisinen når du får astmaplager. Ha den alltid med deg. Trenger du den 3 ganger i uken eller mer, ' +
        'er du i gul sone. Navn og dose: fylles ut av legen.',
      category: 'medication',
      timing: asNeeded('Ved behov'),
      performer: 'patient',
      goals: ['kontroll'],
    },
    {
      key: 'pef',
      title: 'Måle PEF (peak flow)',
      description:
        'Mål PEF med PEF-måler hver morgen når du har plager eller er forkjølet, og ellers som avtalt. Blås tre ganger og skriv ' +
        'ned den beste verdien. Din beste PEF-verdi (personlig beste): fylles ut sammen med helsepersonell.',
      category: 'measurement',
      timing: daily('Hver morgen i perioder med plager, og ellers som avtalt', { when: ['MORN'] }),
      performer: 'patient',
      goals: ['kontroll'],
    },
    {
      key: 'inhalasjonsteknikk',
      title: 'Sjekk av inhalasjonsteknikk',
      description: 'Vis hvordan du tar medisinene dine, så sjekker vi at de kommer ned i lungene. Ta med inhalatorene til kontrollen.',
      category: 'medication',
      timing: yearly('Ved den årlige kontrollen, og når du får ny inhalator'),
      performer: { role: 'Fastlege eller sykepleier' },
      goals: ['kontroll'],
    },
    {
      key: 'fysisk-aktivitet',
      title: 'Fysisk aktivitet',
      description:
        'Vær i aktivitet hver dag – trening er bra ved astma. Varm opp godt. Gir trening deg plager, kan du ta anfallsmedisin ' +
        'før trening hvis legen har avtalt det med deg.',
      category: 'activity',
      timing: weekly('Minst 30 minutter, 5 dager i uken (barn: minst 60 minutter hver dag)', 5, { duration: 30, durationUnit: 'min' }),
      performer: 'patient',
      goals: ['hva-er-viktig'],
    },
    {
      key: 'utlosende-faktorer',
      title: 'Unngå det som gir astmaplager',
      description:
        'Unngå røyk, også røyk fra andre, og det du vet gir deg plager, for eksempel pollen, dyr, støv eller kald luft. ' +
        'Ikke røyk eller bruk e-sigarett.',
      category: 'lifestyle',
      timing: daily('Hver dag'),
      performer: 'patient',
      goals: ['kontroll'],
    },
    {
      key: 'arskontroll',
      title: 'Årlig kontroll hos fastlegen',
      description:
        'Fastlegen går gjennom astmaen, medisinene, PEF-målingene og denne planen med deg minst én gang i året, ' +
        'med lungefunksjonsmåling (spirometri) ved behov. Spør om du bør ta influensavaksine.',
      category: 'measurement',
      timing: yearly('Minst én gang i året'),
      performer: { role: 'Fastlege' },
    },
  ],
  zones: [
    {
      level: 'green',
      title: 'Grønn sone – astmaen er under kontroll',
      criteria: 'Du har lite eller ingen plager, sover godt og kan være i aktivitet som vanlig.',
      symptoms: [
        'Lite eller ingen hoste, piping eller tetthet i brystet',
        'Du sover hele natten uten astmaplager',
        'Du trenger anfallsmedisin 2 ganger i uken eller sjeldnere',
        'Du kan trene, leke og jobbe som vanlig',
      ],
      thresholds: [{ measurement: MEASUREMENT.peakFlow, comparator: '>=', percentOfBaseline: 80 }],
      actions: [
        'Ta den forebyggende medisinen hver dag som avtalt, også når du er bra',
        'Ha anfallsmedisinen med deg',
        'Unngå det du vet gir deg astmaplager, og ikke røyk',
        'Mål PEF som avtalt',
      ],
      contacts: [{ who: 'Fastlegen – vanlig kontroll minst én gang i året, eller når du har spørsmål', within: years(1) }],
    },
    {
      level: 'yellow',
      title: 'Gul sone – astmaen er verre',
      criteria: 'Astmaplagene kommer tilbake eller øker, eller PEF er under 80 % av din beste verdi.',
      symptoms: [
        'Mer hoste, piping i brystet, tetthet eller tung pust',
        'Du våkner om natten på grunn av astmaen',
        'Du trenger anfallsmedisin 3 ganger i uken eller mer, eller oftere enn vanlig',
        'Astmaen hindrer deg i vanlige aktiviteter, på skolen eller på jobb',
        'Du er forkjølet og astmaen blir verre',
      ],
      thresholds: [{ measurement: MEASUREMENT.peakFlow, comparator: '<', percentOfBaseline: 80 }],
      actions: [
        'Fortsett med den forebyggende medisinen, og øk dosen slik det står under medisiner',
        'Bruk anfallsmedisinen ved behov. Trenger du den oftere enn hver 4. time, er du i rød sone',
        'Mål PEF morgen og kveld, og skriv det ned',
        'Er PEF under 60 % av din beste verdi, eller er du ikke bedre etter 2 døgn (48 timer): start prednisolon hvis legen har avtalt det med deg, og ring fastlegen samme dag',
        'Er du ikke tilbake i grønn sone etter 7 dager, bestill time hos fastlegen',
      ],
      // ERS Breathe: below 80 % step up inhaled steroid, below 60 % oral steroid and seek advice.
      // Durations of prednisolone are the usual courses (not stated in the reference).
      medications: [
        'Økt dose av den forebyggende medisinen: navn, dose og hvor mange dager fylles ut av legen',
        'Prednisolon-tabletter, bare hvis legen har avtalt det: dose og antall dager fylles ut av legen (vanligvis 3–5 dager for barn og 5–7 dager for voksne)',
      ],
      contacts: [
        { who: 'Fastlegen – hvis du blir verre, eller har startet med prednisolon', within: hours(24) },
        LEGEVAKT('når fastlegen er stengt og du blir verre', hours(24)),
      ],
      emergency: false,
    },
    {
      level: 'red',
      title: 'Rød sone – alvorlig astmaanfall',
      criteria: 'Du har et alvorlig astmaanfall. Ring 113 med en gang.',
      symptoms: [
        'Anfallsmedisinen hjelper ikke, eller du trenger den oftere enn hver 4. time',
        'Du er så tung i pusten at du ikke klarer å snakke, spise eller sove',
        'Leppene er blå eller grå',
        'Du blir slapp, forvirret eller svært trøtt',
        'Hos barn: det trekker inn mellom ribbeina eller under brystbeinet når barnet puster',
      ],
      // ERS Breathe puts urgent care below 40 %; the British (BTS) severity bands, which the
      // Asthma + Lung UK plan follows, call 33–50 % "acute severe". Samplan uses 50 % so that the
      // red zone starts early; the exact cut-off is not settled in the reference.
      thresholds: [{ measurement: MEASUREMENT.peakFlow, comparator: '<', percentOfBaseline: 50 }],
      actions: [
        'Ring 113 med en gang',
        'Sitt oppreist og prøv å puste rolig',
        'Ta anfallsmedisinen mens du venter: 1 drag hvert 30.–60. sekund, inntil 10 drag, gjerne med inhalasjonskammer. Bruker du en annen anfallsmedisin enn salbutamol eller terbutalin, følg dosen legen har skrevet her: fylles ut av legen',
        'Er ambulansen ikke kommet etter 10 minutter og du fortsatt er dårlig, gjenta de 10 dragene',
      ],
      contacts: [EMERGENCY_113],
      emergency: true,
    },
  ],
  sources: [
    DHO_SOURCE,
    { type: 'documentation', display: 'Asthma + Lung UK: Completing an asthma action plan', url: 'https://asthmaandlung.org.uk/conditions/completing-asthma-action-plan-your-patients' },
    { type: 'documentation', display: 'ERS Breathe: Written asthma action plans', url: 'https://breathe.ersjournals.com/content/11/2/98.figures-only' },
  ],
};

export const astma = buildTemplate(astmaSpec);
