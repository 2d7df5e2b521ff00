/**
 * The extensions a Subscription may carry, made known to the validator (an unknown extension is
 * an error): the two R4 Subscriptions Backport extensions Samplan reads (the IG's, not published
 * by Samplan), and Samplan's own owner and secret extensions (published with the other profiles,
 * ../profiles/definitions.ts). The secret is taken out before a write is validated; its
 * definition lets `$validate` accept a Subscription as a client sends it.
 */
import type { StructureDefinition } from '@medplum/fhirtypes';
import { registerProfile } from '../../fhir/validation/validator.js';
import { subscriptionOwnerExtension, subscriptionSecretExtension } from '../profiles/definitions.js';
import { SUBSCRIPTION_EXTENSION } from './spec.js';

function simpleExtension(url: string, name: string, description: string, context: string, valueType: string): StructureDefinition {
  return {
    resourceType: 'StructureDefinition',
    url,
    name,
    title: name,
    status: 'active',
    description,
    fhirVersion: '4.0.1',
    kind: 'complex-type',
    abstract: false,
    context: [{ type: 'element', expression: context }],
    type: 'Extension',
    baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Extension',
    derivation: 'constraint',
    differential: {
      element: [
        { id: 'Extension', path: 'Extension', short: name, definition: description, min: 0, max: '1' },
        { id: 'Extension.extension', path: 'Extension.extension', max: '0' },
        { id: 'Extension.url', path: 'Extension.url', fixedUri: url },
        { id: 'Extension.value[x]', path: 'Extension.value[x]', min: 1, type: [{ code: valueType }] },
      ],
    },
  };
}

export const subscriptionExtensionDefinitions: StructureDefinition[] = [
  simpleExtension(
    SUBSCRIPTION_EXTENSION.filterCriteria,
    'BackportFilterCriteria',
    'Subscriptions Backport: the filter of a topic-based subscription in R4, as a search (e.g. patient=Patient/123 or CarePlan?patient=Patient/123&status=active).',
    'Subscription.criteria',
    'string',
  ),
  simpleExtension(
    SUBSCRIPTION_EXTENSION.payloadContent,
    'BackportPayloadContent',
    'Subscriptions Backport: how much a notification says about the changed resources (Samplan: empty or id-only).',
    'Subscription.channel.payload',
    'code',
  ),
  subscriptionOwnerExtension,
  subscriptionSecretExtension,
];

let registered = false;

export function registerSubscriptionDefinitions(): void {
  if (registered) return;
  registered = true;
  for (const sd of subscriptionExtensionDefinitions) registerProfile(sd);
}
