/**
 * KOLS (COPD): behandlings- og egenbehandlingsplan.
 *
 * Sources (shared/reference/norway-context.md §4.2): HNT (a flare-up is more breathlessness, cough
 * and sputum; treat at once), Vestre Viken (tailored advice on adjusting medicines, follow the
 * agreed criteria and courses exactly, tell the GP), the review of COPD guidelines (prednisolone
 * when clearly more breathless; antibiotics when sputum increases or changes colour), the ALA /
 * HealthLinkBC / PeaceHealth three-zone action plans (green/yellow/red symptoms) and NHS
 * Scotland's rescue-pack rules (start at home, contact the GP after 24–48 h without improvement,
 * emergency number in red).
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
  quantity,
  type TemplateSpec,
  USAGE_COMMON,
  weekly,
  yearly,
  years,
} from './build.js';

export const kolsSpec: TemplateSpec = {
  key: 'kols',
  title: 'Behandlingsplan og egenbehandlingsplan ved KOLS',
  subtitle: 'Mal fra Samplan – tilpasses pasienten',
  description:
    'Mal for en felles behandlingsplan og egenbehandlingsplan for pasienter med kronisk obstruktiv lungesykdom (KOLS): ' +
    'pasientens egne mål, daglige tiltak (faste medisiner, måling av oksygenmetning, fysisk aktivitet, røykeslutt, kosthold, ' +
    'psykisk helse) og tre soner for hva pasienten gjør når KOLS-en blir verre, med beredskapspakke (prednisolon og antibiotika).',
  purpose:
    'Planen hjelper deg å leve godt med KOLS: hva som er viktig for deg, hva du gjør hver dag, og hvordan du kjenner igjen ' +
    'en forverring tidlig og vet hva du skal gjøre og hvem du skal ringe.',
  usage:
    `${USAGE_COMMON} For KOLS: fyll inn navn og dose på faste inhalasjonsmedisiner og anfallsmedisin, innholdet i beredskapspakken ` +
    '(prednisolon: dose og antall dager; antibiotika: preparat, dose og antall dager) og pasientens vanlige oksygenmetning. ' +
    'Grensene for oksygenmetning i malen (under 90 % gul, under 85 % rød) er standardverdier og må settes individuelt ' +
    'for pasienter som har lav metning til vanlig.',
  condition: {
    text: 'KOLS',
    icd10: { code: 'J44', display: 'Annen kronisk obstruktiv lungesykdom' },
    icpc2: { code: 'R95', display: 'Kronisk obstruktiv lungesykdom' },
    snomed: { code: '13645005', display: 'kronisk obstruktiv lungesykdom' },
  },
  goals: [
    whatMatters('å klare å gå tur med hunden hver dag og være med i familieselskaper.'),
    {
      id: 'tidlig-behandling',
      priority: 'high-priority',
      description: 'Oppdage forverring tidlig og starte behandlingen raskt, slik at jeg slipper å bli lagt inn på sykehus.',
    },
    {
      id: 'aktivitet',
      priority: 'medium-priority',
      description: 'Være fysisk aktiv minst 30 minutter de fleste dager i uken.',
    },
  ],
  measures: [
    {
      key: 'inhalasjonsmedisiner',
      title: 'Faste inhalasjonsmedisiner',
      description:
        'Ta de faste inhalasjonsmedisinene hver dag, også når du føler deg bra. Skyll munnen etter medisin med kortison. ' +
        'Navn og dose: fylles ut av legen.',
      category: 'medication',
      timing: daily('Hver dag, som forskrevet'),
      performer: 'patient',
      goals: ['tidlig-behandling'],
    },
    {
      key: 'anfallsmedisin',
      title: 'Anfallsmedisin ved behov',
      description:
        'Bruk den hurtigvirkende inhalasjonsmedisinen når du blir mer tungpustet. Trenger du den oftere enn vanlig, ' +
        'er du i gul sone. Navn og dose: fylles ut av legen.',
      category: 'medication',
      timing: asNeeded('Ved behov'),
      performer: 'patient',
      goals: ['tidlig-behandling'],
    },
    {
      key: 'beredskapspakke',
      title: 'Beredskapspakke hjemme (prednisolon og antibiotika)',
      description:
        'Fastlegen skriver ut en beredskapspakke med kortisontabletter (prednisolon) og antibiotika som du har hjemme, ' +
        'og skriver en ny når den er brukt eller går ut på dato. Du bruker den slik gul sone sier.',
      category: 'medication',
      timing: yearly('Minst én gang i året, og etter at den er brukt'),
      performer: { role: 'Fastlege' },
      goals: ['tidlig-behandling'],
    },
    {
      key: 'oksygenmetning',
      title: 'Måle oksygenmetning',
      description:
        'Mål oksygenmetningen (SpO2) med pulsoksymeter hver morgen mens du sitter i ro, og når du føler deg verre. ' +
        'Skriv ned verdien. Din vanlige verdi: fylles ut sammen med helsepersonell.',
      category: 'measurement',
      timing: daily('Hver morgen, og når du føler deg verre', { when: ['MORN'] }),
      performer: 'patient',
      goals: ['tidlig-behandling'],
    },
    {
      key: 'fysisk-aktivitet',
      title: 'Fysisk aktivitet og pusteteknikk',
      description:
        'Vær i aktivitet minst 30 minutter de fleste dager, for eksempel gåtur eller trening i KOLS-gruppe eller hos fysioterapeut. ' +
        'Det er trygt å bli litt andpusten når du trener. Bruk leppepust når du blir andpusten.',
      category: 'activity',
      timing: weekly('Minst 30 minutter, 5 dager i uken', 5, { duration: 30, durationUnit: 'min' }),
      performer: 'patient',
      goals: ['aktivitet'],
    },
    {
      key: 'royking',
      title: 'Røykfri hverdag',
      description:
        'Å slutte å røyke er det viktigste du kan gjøre for lungene. Røyker du, kan fastlegen hjelpe deg å slutte. ' +
        'Unngå også røyk fra andre.',
      category: 'lifestyle',
      timing: daily('Hver dag'),
      performer: 'patient',
      goals: ['tidlig-behandling'],
    },
    {
      key: 'kosthold',
      title: 'Kosthold og vekt',
      description:
        'Spis variert og nok. Blir du tungpusten av å spise, spis små måltider ofte. Vei deg én gang i uken: ' +
        'går du ned i vekt uten å ville det, si fra til fastlegen.',
      category: 'diet',
      timing: weekly('Vei deg én gang i uken', 1),
      performer: 'patient',
    },
    {
      key: 'vaksiner',
      title: 'Vaksiner mot influensa og lungebetennelse',
      description: 'Ta influensavaksine hver høst. Spør fastlegen om vaksine mot lungebetennelse (pneumokokkvaksine).',
      category: 'medication',
      timing: yearly('Hver høst'),
      performer: { role: 'Fastlege' },
      goals: ['tidlig-behandling'],
    },
    {
      key: 'psykisk-helse',
      title: 'Samtale om hvordan du har det',
      description:
        'Mange med KOLS blir engstelige når pusten blir tung, eller blir nedstemte. Snakk med fastlegen om det: ' +
        'det finnes god hjelp, for eksempel pusteteknikk, samtaler og KOLS-skole.',
      category: 'mentalHealth',
      timing: yearly('Ved den årlige kontrollen, og ellers når du trenger det'),
      performer: { role: 'Fastlege' },
    },
    {
      key: 'arskontroll',
      title: 'Årlig kontroll hos fastlegen',
      description:
        'Fastlegen går gjennom planen med deg minst én gang i året: lungefunksjon (spirometri), inhalasjonsteknikk, ' +
        'medisiner, vaksiner og beredskapspakke.',
      category: 'measurement',
      timing: yearly('Minst én gang i året'),
      performer: { role: 'Fastlege' },
    },
  ],
  zones: [
    {
      level: 'green',
      title: 'Grønn sone – som vanlig',
      criteria: 'Du har det som på en vanlig god dag: pusten, hosten og slimet er som vanlig for deg.',
      symptoms: [
        'Pusten er som vanlig for deg',
        'Hoste og slim er som vanlig, og slimet har vanlig farge',
        'Du sover og spiser som vanlig',
        'Du klarer dine vanlige aktiviteter',
      ],
      actions: [
        'Ta de faste inhalasjonsmedisinene hver dag, også når du føler deg bra',
        'Vær i aktivitet hver dag, for eksempel en gåtur eller øvelsene dine',
        'Bruk leppepust når du blir andpusten',
        'Mål oksygenmetningen som avtalt og skriv den ned',
        'Ikke røyk, og unngå røyk, støv og sterk kulde når du kan',
      ],
      contacts: [{ who: 'Fastlegen – vanlig kontroll minst én gang i året, eller når du har spørsmål', within: years(1) }],
    },
    {
      level: 'yellow',
      title: 'Gul sone – verre enn vanlig',
      criteria:
        'Du er tydelig verre enn vanlig: mer tungpustet, mer hoste eller slim, eller slimet har skiftet farge. ' +
        'Start tiltakene med en gang – da blir forverringen ofte mindre.',
      symptoms: [
        'Du er mer tungpustet enn vanlig',
        'Du hoster mer eller har mer slim enn vanlig',
        'Slimet har skiftet farge (gult, grønt eller brunt)',
        'Du trenger anfallsmedisinen oftere enn vanlig',
        'Du har feber (over 38 °C)',
        'Du sover dårlig på grunn av pusten, eller har mindre krefter enn vanlig',
        'Oksygenmetningen er lavere enn grensen som er avtalt for deg',
      ],
      // Default threshold, to be set per patient from the usual value measured over the first
      // 2–4 weeks (DHO practice, §4.1). The reference gives no SpO2 cut-off for COPD; 90 % is a
      // common default, often too high for patients with chronic hypoxaemia. Evidence is thin.
      thresholds: [{ measurement: MEASUREMENT.spo2, comparator: '<', value: quantity(90, '%') }],
      actions: [
        'Bruk anfallsmedisinen som avtalt',
        'Bruk leppepust og hvilestillinger, og ta pauser',
        'Start med kortisontablettene (prednisolon) fra beredskapspakken hvis du er tydelig mer tungpustet enn vanlig',
        'Start med antibiotika fra beredskapspakken hvis slimet har skiftet farge, eller du har mye mer slim enn vanlig',
        'Drikk nok, og spis små måltider ofte',
        'Skriv ned dag og klokkeslett for når du startet med medisinene',
        'Er du ikke bedre etter 2 døgn (48 timer), eller blir du verre, ring fastlegen igjen – eller legevakten hvis fastlegen er stengt',
      ],
      // Rescue pack rules: prednisolone when clearly more breathless, antibiotics when sputum
      // increases or changes colour (§4.2). Doses are individual; 5 days of prednisolone and
      // 5–7 days of antibiotics are the usual courses, not stated in the reference.
      medications: [
        'Prednisolon (kortisontabletter) fra beredskapspakken: dose og antall dager fylles ut av legen (vanligvis 5 dager)',
        'Antibiotika fra beredskapspakken: navn, dose og antall dager fylles ut av legen (vanligvis 5–7 dager). Ta hele kuren',
      ],
      // NHS Scotland: contact the GP after 24–48 h without improvement. Samplan's default: tell
      // the GP within 24 h that the rescue pack is started, call again if not better in 48 h.
      contacts: [
        { who: 'Fastlegen – si fra at du har startet med beredskapspakken', within: hours(24) },
        LEGEVAKT('når fastlegen er stengt og du blir verre', hours(24)),
      ],
      emergency: false,
    },
    {
      level: 'red',
      title: 'Rød sone – fare',
      criteria: 'Du er mye verre og har ett eller flere faretegn. Ring 113 med en gang.',
      symptoms: [
        'Du er svært tungpustet, også når du sitter stille',
        'Du klarer ikke å snakke i hele setninger',
        'Leppene eller fingrene er blå eller grå',
        'Du er forvirret, uvanlig søvnig eller vanskelig å vekke',
        'Du har smerter eller trykk i brystet',
        'Du hoster opp blod',
      ],
      // Default, set per patient (see the yellow zone). Evidence for the exact cut-off is thin.
      thresholds: [{ measurement: MEASUREMENT.spo2, comparator: '<', value: quantity(85, '%') }],
      actions: [
        'Ring 113 med en gang',
        'Sitt oppreist, bruk leppepust og ta anfallsmedisinen mens du venter',
        'Bruker du oksygen hjemme: bruk den mengden legen har bestemt, og ikke skru opp på egen hånd',
        'Lås opp døren, og ha medisinlisten og denne planen klar',
      ],
      contacts: [EMERGENCY_113],
      emergency: true,
    },
  ],
  sources: [
    DHO_SOURCE,
    {
      type: 'documentation',
      display: 'Helsedirektoratet: Nasjonal faglig retningslinje for KOLS – diagnostisering og behandling',
      url: 'https://helsebiblioteket.no/innhold/nasjonal-faglig-retningslinje/kols%E2%80%93diagnostisering%20og%20behandling',
    },
    { type: 'documentation', display: 'Helse Nord-Trøndelag: KOLS', url: 'https://www.hnt.no/behandlinger/kols/' },
    { type: 'documentation', display: 'NHS Scotland (My Lungs My Life): varselsignaler og beredskapspakke', url: 'https://www.mylungsmylife.org/topics/group-1/warning-signs-of-infection-or-exacerbation/red/' },
  ],
};

export const kols = buildTemplate(kolsSpec);
