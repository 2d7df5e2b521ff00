/**
 * The kick-off parameters of $export (FHIR Bulk Data Access IG): `_outputFormat`, `_type`,
 * `_since`, from the query string (GET) or a Parameters body (POST). Anything else the IG defines
 * but Samplan does not support (`_elements`, `_typeFilter`, `patient`, `includeAssociatedData`,
 * `_until`, …) is refused with 400, unless the request says `Prefer: handling=lenient`, as the IG
 * asks.
 */
import type { Parameters } from '@medplum/fhirtypes';
import { definitions } from '../../fhir/definitions.js';
import { errors } from '../../fhir/outcomes.js';
import type { FhirRequest } from '../../fhir/types.js';

export const NDJSON = 'application/fhir+ndjson';
export const OUTPUT_FORMATS: readonly string[] = [NDJSON, 'application/ndjson', 'ndjson'];

/** Parameters handled by the HTTP layer, not by $export. */
const TRANSPORT = new Set(['_format', '_pretty']);

export interface KickOffParams {
  /** Requested types, in the order given, without duplicates; undefined: all the export may hold. */
  types?: string[];
  /** Only resources changed after this instant (ISO text, as given). */
  since?: string;
}

/** FHIR `instant`: a full date and time with seconds and a time zone. */
const INSTANT_RE = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$/;

function parametersOf(req: FhirRequest): Array<[string, string]> {
  const pairs: Array<[string, string]> = req.query.filter(([k]) => !TRANSPORT.has(k)).map(([k, v]) => [k, v]);
  const body = req.body as Parameters | undefined;
  if (body === undefined) return pairs;
  if (body?.resourceType !== 'Parameters') throw errors.badRequest('A POST to $export takes a Parameters resource (or no body)');
  for (const p of body.parameter ?? []) {
    const value = p.valueString ?? p.valueInstant ?? p.valueCode ?? p.valueUri ?? p.valueDateTime;
    if (value === undefined) {
      // Named but without a simple value (e.g. patient as a Reference): unsupported, not ignored.
      pairs.push([p.name ?? '', '']);
      continue;
    }
    pairs.push([p.name ?? '', String(value)]);
  }
  return pairs;
}

/** Reads and checks the kick-off parameters; throws a 400 FhirError for anything wrong. */
export function parseKickOff(req: FhirRequest): KickOffParams {
  const result: KickOffParams = {};
  const lenient = req.preferHandling === 'lenient';
  for (const [name, value] of parametersOf(req)) {
    switch (name) {
      case '_outputFormat':
        if (!OUTPUT_FORMATS.includes(value.trim())) {
          throw errors.badRequest(
            `_outputFormat=${JSON.stringify(value.slice(0, 60))} is not supported; Samplan exports ${OUTPUT_FORMATS.join(', ')} (all the same: NDJSON)`,
            '_outputFormat',
          );
        }
        break;
      case '_type': {
        const types = (result.types ??= []);
        for (const raw of value.split(',')) {
          const type = raw.trim();
          if (!type) throw errors.badRequest('_type has an empty entry: give a comma-separated list of resource types', '_type');
          if (!definitions().isResourceType(type)) throw errors.badRequest(`_type names "${type.slice(0, 64)}", which is not a FHIR R4 resource type`, '_type');
          if (!types.includes(type)) types.push(type);
        }
        break;
      }
      case '_since': {
        const v = value.trim();
        if (!INSTANT_RE.test(v) || Number.isNaN(Date.parse(v))) {
          throw errors.badRequest(
            `_since=${JSON.stringify(value.slice(0, 40))} is not a FHIR instant: give a date and time with seconds and a time zone, e.g. 2026-01-31T12:00:00Z (URL-encode a "+")`,
            '_since',
          );
        }
        if (result.since !== undefined) throw errors.badRequest('_since may be given once', '_since');
        result.since = v;
        break;
      }
      default:
        if (!lenient) {
          throw errors.badRequest(
            `The parameter ${JSON.stringify(name.slice(0, 60))} is not supported by $export (supported: _outputFormat, _type, _since); send "Prefer: handling=lenient" to have unsupported parameters ignored`,
            name.slice(0, 60),
          );
        }
    }
  }
  return result;
}
