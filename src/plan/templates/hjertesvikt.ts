/**
 * Hjertesvikt (heart failure): behandlings- og egenbehandlingsplan.
 *
 * Sources (shared/reference/norway-context.md §4.4): daily weighing in the morning after the
 * toilet, before dressing and breakfast, on the same scale, written down; act when the weight
 * rises more than 2 kg over 3–7 days by following the agreed diuretic instructions, or contact the
 * heart-failure nurse if none were given; record blood pressure, pulse, swelling and
 * breathlessness; heart-failure clinics are run by nurses and cardiologists (Helsebiblioteket).
 */
import {
  whatMatters,
  buildTemplate,
  daily,
  days,
  DHO_SOURCE,
  EMERGENCY_113,
  hours,
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

export const hjertesviktSpec: TemplateSpec = {
  key: 'hjertesvikt',
  title: 'Behandlingsplan og egenbehandlingsplan ved hjertesvikt',
  subtitle: 'Mal fra Samplan – tilpasses pasienten',
  description:
    'Mal for en felles behandlingsplan og egenbehandlingsplan for pasienter med hjertesvikt: pasientens egne mål, daglig veiing, ' +
    'faste hjertemedisiner, blodtrykk og puls, blodprøver, fysisk aktivitet, salt og væske, psykisk helse, og tre soner med ' +
    'vektøkning over 2 kg på 3 dager som grense for gul sone og avtale om ekstra vanndrivende.',
  purpose:
    'Planen hjelper deg å leve godt med hjertesvikt: hva som er viktig for deg, hva du gjør hver dag, og hvordan du ' +
    'oppdager tidlig at kroppen samler væske, slik at du vet hva du skal gjøre og hvem du skal ringe.',
  usage:
    `${USAGE_COMMON} For hjertesvikt: fyll inn faste hjertemedisiner med navn og dose, pasientens tørrvekt, avtale om ekstra ` +
    'vanndrivende (preparat, dose, hvor mange dager) eller at pasienten skal ringe, eventuell væskegrense, og hvilke medisiner ' +
    'som skal settes på pause ved oppkast, diaré eller feber. Kontaktinformasjon til hjertesviktpoliklinikken legges inn der den finnes.',
  condition: {
    text: 'Hjertesvikt',
    icd10: { code: 'I50', display: 'Hjertesvikt' },
    icpc2: { code: 'K77', display: 'Hjertesvikt' },
    snomed: { code: '84114007', display: 'hjertesvikt' },
  },
  goals: [
    whatMatters('å klare å gå til butikken og stelle i hagen selv.'),
    {
      id: 'stabil',
      priority: 'high-priority',
      description: 'Stabil vekt og ingen innleggelse på sykehus på grunn av hjertesvikt.',
    },
    {
      id: 'aktivitet',
      priority: 'medium-priority',
      description: 'Være i fysisk aktivitet hver dag, så mye som jeg tåler.',
    },
  ],
  measures: [
    {
      key: 'veiing',
      title: 'Vei deg hver morgen',
      description:
        'Vei deg hver morgen etter at du har vært på toalettet, før frokost, i samme type klær og på samme vekt. Skriv ned vekten. ' +
        'Din tørrvekt (vekten når du har det bra): fylles ut sammen med helsepersonell.',
      category: 'measurement',
      timing: daily('Hver morgen', { when: ['MORN'] }),
      performer: 'patient',
      goals: ['stabil'],
    },
    {
      key: 'hjertemedisiner',
      title: 'Faste hjertemedisiner',
      description:
        'Ta hjertemedisinene hver dag som forskrevet, også når du føler deg bra. Ikke slutt med dem eller endre dosen uten å ' +
        'snakke med legen. Navn og dose: fylles ut av legen.',
      category: 'medication',
      timing: daily('Hver dag, som forskrevet'),
      performer: 'patient',
      goals: ['stabil'],
    },
    {
      key: 'blodtrykk-puls',
      title: 'Måle blodtrykk og puls',
      description: 'Mål blodtrykk og puls én gang i uken, og når du føler deg svimmel eller dårlig. Skriv ned verdiene.',
      category: 'measurement',
      timing: weekly('Én gang i uken, og når du føler deg svimmel eller dårlig', 1),
      performer: 'patient',
      goals: ['stabil'],
    },
    {
      key: 'blodprover',
      title: 'Blodprøver',
      description: 'Blodprøver av nyrefunksjon og salter (natrium og kalium) etter endringer i medisinene, og minst 2 ganger i året.',
      category: 'measurement',
      timing: yearly('Minst 2 ganger i året, og etter endringer i medisinene', 2),
      performer: { role: 'Fastlege' },
      goals: ['stabil'],
    },
    {
      key: 'fysisk-aktivitet',
      title: 'Fysisk aktivitet',
      description:
        'Vær i aktivitet hver dag, for eksempel en gåtur i et tempo der du kan snakke. Spør om hjerterehabilitering eller ' +
        'trening hos fysioterapeut.',
      category: 'activity',
      timing: daily('Hver dag, gjerne 20–30 minutter', { duration: 30, durationUnit: 'min' }),
      performer: 'patient',
      goals: ['aktivitet', 'hva-er-viktig'],
    },
    {
      key: 'salt-og-vaeske',
      title: 'Lite salt, og drikke som avtalt',
      description:
        'Bruk lite salt i maten, og unngå svært salt mat. Har legen gitt deg en grense for hvor mye du skal drikke per døgn, ' +
        'følg den: fylles ut av legen. I varmt vær og ved feber kan grensen måtte endres – spør legen.',
      category: 'diet',
      timing: daily('Hver dag'),
      performer: 'patient',
      goals: ['stabil'],
    },
    {
      key: 'roykfri-alkohol',
      title: 'Røyk og alkohol',
      description: 'Ikke røyk. Vær forsiktig med alkohol, og snakk med legen om hvor mye som er trygt for deg.',
      category: 'lifestyle',
      timing: daily('Hver dag'),
      performer: 'patient',
    },
    {
      key: 'psykisk-helse',
      title: 'Samtale om hvordan du har det',
      description:
        'Det er vanlig å bli nedstemt eller engstelig når man har hjertesvikt. Snakk med fastlegen eller hjertesviktsykepleieren ' +
        'om hvordan du har det.',
      category: 'mentalHealth',
      timing: yearly('Ved kontrollene, og ellers når du trenger det'),
      performer: { role: 'Fastlege eller hjertesviktsykepleier' },
    },
    {
      key: 'kontroll',
      title: 'Kontroll hos fastlegen eller hjertesviktpoliklinikken',
      description: 'Gjennomgang av vekt, plager, medisiner, vaksiner og denne planen. Ta med vektskjemaet.',
      category: 'measurement',
      timing: timing('Hver 3.–6. måned, eller som avtalt', { frequency: 1, period: 3, periodMax: 6, periodUnit: 'mo' }),
      performer: { role: 'Fastlege eller hjertesviktpoliklinikk' },
      goals: ['stabil'],
    },
  ],
  zones: [
    {
      level: 'green',
      title: 'Grønn sone – som vanlig',
      criteria: 'Pusten, hevelsen i bena og vekten er som vanlig for deg.',
      symptoms: [
        'Pusten er som vanlig for deg',
        'Ingen ny hevelse i bena, anklene eller magen',
        'Vekten er stabil',
        'Du sover som vanlig og klarer dine vanlige aktiviteter',
      ],
      actions: [
        'Vei deg hver morgen og skriv ned vekten',
        'Ta hjertemedisinene hver dag som avtalt',
        'Vær i aktivitet hver dag',
        'Bruk lite salt, og følg væskegrensen hvis du har fått en',
      ],
      contacts: [{ who: 'Fastlegen eller hjertesviktpoliklinikken – vanlig kontroll som avtalt', within: months(6) }],
    },
    {
      level: 'yellow',
      title: 'Gul sone – verre enn vanlig',
      criteria: 'Vekten har gått opp mer enn 2 kg på 3 dager, eller du er mer tungpustet eller mer hoven enn vanlig.',
      symptoms: [
        'Du er mer tungpustet enn vanlig når du går eller gjør ting',
        'Mer hevelse i bena, anklene eller magen',
        'Du må ha flere puter for å puste om natten, eller våkner tungpustet',
        'Du er svimmel, eller mye mer sliten enn vanlig',
        'Du har oppkast, diaré eller feber og får i deg lite drikke',
      ],
      // §4.4: more than 2 kg over 3–7 days; the ESC "2 kg in 3 days" rule is [unverified] there.
      // Samplan uses 3 days, the stricter end.
      thresholds: [{ measurement: MEASUREMENT.weight, comparator: '>', value: quantity(2, 'kg'), changeOver: days(3) }],
      actions: [
        'Ta ekstra vanndrivende medisin slik det står under medisiner, hvis legen har avtalt det med deg',
        'Har du ikke fått en slik avtale: ring fastlegen eller hjertesviktsykepleieren samme dag',
        'Fortsett å veie deg hver morgen og skriv ned vekten',
        'Har du oppkast eller diaré og får i deg lite drikke: ring legen – noen hjertemedisiner og vanndrivende kan måtte settes på pause',
        'Går ikke vekten ned i løpet av 2 døgn, eller blir du verre, ring fastlegen igjen – eller legevakten hvis fastlegen er stengt',
      ],
      medications: ['Ekstra vanndrivende (for eksempel furosemid): dose og antall dager fylles ut av legen'],
      contacts: [
        { who: 'Fastlegen eller hjertesviktsykepleieren', within: hours(24) },
        LEGEVAKT('når fastlegen er stengt og du blir verre', hours(24)),
      ],
      emergency: false,
    },
    {
      level: 'red',
      title: 'Rød sone – fare',
      criteria: 'Du har faretegn. Ring 113 med en gang.',
      symptoms: [
        'Du er svært tungpustet i hvile, eller må sitte oppreist for å få luft',
        'Du har smerter, trykk eller tyngde i brystet',
        'Du hoster opp skummende eller rosa slim',
        'Du besvimer, eller har hjertebank sammen med svimmelhet',
        'Du blir plutselig forvirret',
      ],
      actions: [
        'Ring 113 med en gang',
        'Sitt oppreist med bena ned',
        'Har du fått nitroglyserin mot brystsmerter, ta det slik legen har sagt',
        'Ikke kjør bil selv. Lås opp døren, og ha medisinlisten og denne planen klar',
      ],
      contacts: [EMERGENCY_113],
      emergency: true,
    },
  ],
  sources: [
    DHO_SOURCE,
    { type: 'documentation', display: 'Helse Nord-Trøndelag: Hjertesvikt – livsstilsbehandling', url: 'https://hnt.no/se/behandlinger/hjertesvikt-livsstilsbehandling' },
    { type: 'documentation', display: 'Helsebiblioteket: Hjertesvikt – behandling i poliklinikk (fagprosedyre)', url: 'https://www.helsebiblioteket.no/fagprosedyrer/ferdige/hjertesvikt-behandling-i-poliklinikk' },
    {
      type: 'documentation',
      display: 'Terveyskylä: Viktkontroll som en del av egenvården av hjärtsvikt',
      url: 'https://www.terveyskyla.fi/sv/hjarthuset/information/hjartsvikt/egenvard-av-hjartsvikt/viktkontroll-som-en-del-av-egenvarden-av-hjartsvikt',
    },
  ],
};

export const hjertesvikt = buildTemplate(hjertesviktSpec);
