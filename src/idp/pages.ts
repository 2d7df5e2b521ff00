/**
 * The embedded identity provider's pages: plain server-rendered HTML in Norwegian bokmål that
 * works without JavaScript. The login page lists the synthetic personas the client may log in
 * as; each is one button. A citizen who may act for others then chooses whom they act for.
 */
import { createHash } from 'node:crypto';
import { citizens, clinicians, organisation } from '../demo/population.js';
import { ageOn } from '../no/identifiers.js';
import type { ClientProfile, PersonaKind } from './personas.js';
import { representationsOf } from './personas.js';

const CSS = `
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;font-size:1.0625rem;line-height:1.5;color:#1a1a1a;background:#fff}
.skip{position:absolute;left:-999px;top:0;background:#1a1a1a;color:#fff;padding:.5rem 1rem}
.skip:focus{left:0}
.banner{margin:0;padding:1rem max(1rem,calc((100% - 48rem)/2));background:#fff4ce;border-bottom:4px solid #8a6100}
main{max-width:48rem;margin:0 auto;padding:1rem 1rem 3rem}
h1{font-size:1.75rem;line-height:1.25;margin:1.5rem 0 .5rem}
h2{font-size:1.375rem;margin:2rem 0 .25rem}
h3{font-size:1.125rem;margin:0}
ul.personas{list-style:none;margin:1rem 0 0;padding:0;display:grid;gap:.75rem}
ul.personas li{border:1px solid #6b6b6b;border-radius:6px;padding:.75rem 1rem}
ul.personas p{margin:.25rem 0 .5rem}
.muted{color:#4a4a4a}
.nowrap{white-space:nowrap}
button{font:inherit;font-weight:600;cursor:pointer;border-radius:4px;padding:.5rem 1rem;border:2px solid #00509e;background:#00509e;color:#fff}
button.secondary{background:#fff;color:#00509e}
button:hover{background:#003d78;border-color:#003d78;color:#fff}
a{color:#00509e}
:focus-visible{outline:3px solid #1a1a1a;outline-offset:2px}
fieldset{border:1px solid #6b6b6b;border-radius:6px;margin:1rem 0;padding:.5rem 1rem 1rem}
legend{font-weight:600;padding:0 .25rem}
.choice{display:flex;gap:.5rem;align-items:flex-start;margin:.5rem 0}
.choice input{width:1.25rem;height:1.25rem;margin-top:.2rem}
.error{border-left:6px solid #b00020;background:#fdecee;padding:.75rem 1rem}
.actions{display:flex;gap:1rem;flex-wrap:wrap;margin-top:1rem}
`;

const STYLE_HASH = createHash('sha256').update(CSS).digest('base64');

/** Headers every page gets: no caching, no framing, no scripts, only our own inline style. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; base-uri 'none'; frame-ancestors 'none'`,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function layout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="nb">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} – Samplan testinnlogging</title>
<style>${CSS}</style>
</head>
<body>
<a class="skip" href="#innhold">Hopp til innholdet</a>
<header>
<p class="banner"><strong>Testmiljø:</strong> Dette er Samplans innebygde testinnlogging, ikke HelseID eller Helsenorge. Alle personene her er syntetiske (oppdiktede), og du logger inn uten passord.</p>
</header>
<main id="innhold">
${body}
</main>
</body>
</html>`;
}

const fullName = (p: { name: { given: string; family: string } }) => `${p.name.given} ${p.name.family}`;

function errorBox(message: string | undefined): string {
  return message ? `<p class="error" role="alert"><strong>Feil:</strong> ${escapeHtml(message)}</p>` : '';
}

function clinicianSection(): string {
  const items = clinicians.map((c) => {
    const org = organisation(c.organisation);
    const id = `kliniker-${c.key}`;
    return `<li>
<h3 id="${id}">${escapeHtml(fullName(c))}</h3>
<p id="${id}-om">${escapeHtml(c.title)}, ${escapeHtml(org.name)}. <span class="muted nowrap">${escapeHtml(c.roleDisplay)}, HPR-nummer ${escapeHtml(c.hpr)}</span></p>
<button type="submit" name="person" value="clinician:${escapeHtml(c.key)}" aria-describedby="${id}-om">Logg inn som ${escapeHtml(fullName(c))}</button>
</li>`;
  });
  return `<section aria-labelledby="helsepersonell">
<h2 id="helsepersonell">Helsepersonell</h2>
<p class="muted">Som innlogging med HelseID på sikkerhetsnivå 4. Tokenet får personens HPR-nummer og virksomhet.</p>
<ul class="personas">
${items.join('\n')}
</ul>
</section>`;
}

function citizenSection(): string {
  const items = citizens.map((c) => {
    const id = `innbygger-${c.key}`;
    const reps = representationsOf(c.key);
    const forOthers = reps.length ? ` Kan også handle for ${reps.map((r) => escapeHtml(fullName(r.person))).join(' og ')}.` : '';
    return `<li>
<h3 id="${id}">${escapeHtml(fullName(c))}</h3>
<p id="${id}-om">${escapeHtml(c.about)}.${forOthers}</p>
<button type="submit" name="person" value="citizen:${escapeHtml(c.key)}" aria-describedby="${id}-om">Logg inn som ${escapeHtml(fullName(c))}</button>
</li>`;
  });
  return `<section aria-labelledby="innbyggere">
<h2 id="innbyggere">Innbyggere</h2>
<p class="muted">Som innlogging på Helsenorge med ID-porten (BankID, høyt sikkerhetsnivå).</p>
<ul class="personas">
${items.join('\n')}
</ul>
</section>`;
}

function abortForm(action: string): string {
  return `<form method="post" action="${escapeHtml(action)}/avbryt" class="actions">
<button type="submit" class="secondary">Avbryt innloggingen</button>
</form>`;
}

/** Step 1: choose a persona (the kinds the client allows). */
export function loginPage(options: { action: string; client: ClientProfile; kinds: readonly PersonaKind[]; error?: string }): string {
  const { action, client, kinds, error } = options;
  const who =
    kinds.length === 2 ? 'helsepersonell eller innbygger' : kinds[0] === 'clinician' ? 'helsepersonell' : 'innbygger';
  const body = `<h1>Logg inn i Samplan (testmiljø)</h1>
<p>Du logger inn i <strong>${escapeHtml(client.name)}</strong>. Velg hvilken testperson (${who}) du vil logge inn som.</p>
${errorBox(error)}
<form method="post" action="${escapeHtml(action)}">
${kinds.includes('clinician') ? clinicianSection() : ''}
${kinds.includes('citizen') ? citizenSection() : ''}
</form>
${abortForm(action)}`;
  return layout('Logg inn', body);
}

const BASIS_TEXT: Record<string, string> = {
  FORELDREREPRESENTASJON: 'som forelder',
  FULLMAKT: 'med fullmakt',
};
const SCOPE_TEXT: Record<string, string> = { innsyn: 'se', endre: 'endre' };

/** Step 2 for a citizen who may act for others: "Hvem handler du for?" */
export function actingForPage(options: { action: string; citizenKey: string; error?: string }): string {
  const { action, citizenKey, error } = options;
  const citizen = citizens.find((c) => c.key === citizenKey);
  if (!citizen) throw new Error(`unknown citizen ${citizenKey}`);
  const choices = representationsOf(citizenKey).map(({ representation: r, person }) => {
    const scope = r.scope?.length ? ` (kan ${r.scope.map((s) => SCOPE_TEXT[s] ?? s).join(' og ')})` : '';
    return `<div class="choice"><input type="radio" id="for-${escapeHtml(person.key)}" name="for" value="${escapeHtml(person.key)}">
<label for="for-${escapeHtml(person.key)}">${escapeHtml(fullName(person))}, ${ageOn(person.birthDate)} år – ${escapeHtml(BASIS_TEXT[r.basis] ?? r.basis)}${escapeHtml(scope)}</label></div>`;
  });
  const body = `<h1>Logg inn i Samplan (testmiljø)</h1>
<p>Du logger inn som <strong>${escapeHtml(fullName(citizen))}</strong>, som kan handle på vegne av andre.</p>
${errorBox(error)}
<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="person" value="citizen:${escapeHtml(citizen.key)}">
<fieldset>
<legend>Hvem handler du for?</legend>
<div class="choice"><input type="radio" id="for-self" name="for" value="self" checked>
<label for="for-self">Meg selv (${escapeHtml(fullName(citizen))})</label></div>
${choices.join('\n')}
</fieldset>
<div class="actions"><button type="submit">Fortsett</button></div>
</form>
<p><a href="${escapeHtml(action)}">Tilbake til valg av testperson</a></p>
${abortForm(action)}`;
  return layout('Hvem handler du for?', body);
}

/** An error page; `detail` is shown as it is (escaped), e.g. an OAuth error description. */
export function errorPage(title: string, message: string, detail?: string): string {
  const body = `<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(message)}</p>
${detail ? `<p class="muted">Teknisk beskrivelse: <code>${escapeHtml(detail)}</code></p>` : ''}
<p>Gå tilbake til portalen eller programmet du kom fra, og start innloggingen på nytt.</p>`;
  return layout(title, body);
}

/** The RP-initiated logout confirmation (oidc-provider supplies the form, with id `op.logoutForm`). */
export function logoutPage(form: string): string {
  const body = `<h1>Vil du logge ut?</h1>
<p>Du logges ut av Samplans testinnlogging.</p>
${form}
<div class="actions">
<button type="submit" form="op.logoutForm" value="yes" name="logout">Ja, logg ut</button>
<button type="submit" form="op.logoutForm" class="secondary">Nei, forbli innlogget</button>
</div>`;
  return layout('Logg ut', body);
}

export function loggedOutPage(): string {
  return layout('Logget ut', '<h1>Du er logget ut</h1>\n<p>Du er logget ut av Samplans testinnlogging. Du kan lukke denne siden.</p>');
}
