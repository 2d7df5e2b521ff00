/**
 * capabilities (GET /metadata): a CapabilityStatement generated from what this server really
 * supports — every resource type of the definitions, each with the search parameters the
 * registry indexes, the includes it can follow, the profiles registered for it
 * (`supportedProfile`), the interactions and operations the router has.
 */
import type { CapabilityStatement, CapabilityStatementRestResource, Extension } from '@medplum/fhirtypes';
import { searchRegistry } from '../../search/registry.js';
import { definitions, FHIR_VERSION } from '../definitions.js';
import type { Operation } from '../operations.js';
import type { RequestContext } from '../types.js';
import { onProfileRegistered, registeredProfiles } from '../validation/profiles.js';

/** Who the server is, and what it adds to the statement of a resource type beyond the generated. */
export interface ServerInfo {
  name: string;
  version: string;
  /** Extensions on a type's entry, e.g. the subscription topics on Subscription. */
  resourceExtensions?: Readonly<Record<string, readonly Extension[]>>;
}

const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'] as const;

let cached: { baseUrl: string; text: string } | undefined;
// A profile registered later (a partner's) changes supportedProfile: make the statement again.
onProfileRegistered(() => {
  cached = undefined;
});

/** The canonical URLs of the profiles registered for each resource type. */
function profilesByType(): Map<string, string[]> {
  const byType = new Map<string, string[]>();
  for (const sd of registeredProfiles()) byType.set(sd.type as string, [...(byType.get(sd.type as string) ?? []), sd.url as string]);
  for (const urls of byType.values()) urls.sort();
  return byType;
}

export function capabilityStatement(ctx: RequestContext, operations: ReadonlyArray<Pick<Operation, 'name' | 'definition' | 'type' | 'system' | 'typeLevel' | 'instance'>>, server: ServerInfo): string {
  if (cached?.baseUrl === ctx.baseUrl) return cached.text;
  const registry = searchRegistry();
  const baseParams = registry.base();
  const profiles = profilesByType();
  const resources: CapabilityStatementRestResource[] = definitions().resourceTypes.map((type) => {
    const params = [...registry.forType(type), ...baseParams].sort((a, b) => a.code.localeCompare(b.code));
    const references = registry.forType(type).filter((p) => p.type === 'reference');
    const revIncludes = definitions()
      .resourceTypes.flatMap((source) =>
        registry
          .forType(source)
          .filter((p) => p.type === 'reference' && (!p.targets.length || p.targets.includes(type)))
          .map((p) => `${source}:${p.code}`),
      )
      .sort();
    const typeOperations = operations.filter((o) => (o.typeLevel || o.instance) && (o.type === undefined || o.type === type));
    const supportedProfile = profiles.get(type);
    const extension = server.resourceExtensions?.[type];
    return {
      ...(extension?.length ? { extension: [...extension] } : {}),
      type,
      profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
      ...(supportedProfile ? { supportedProfile } : {}),
      interaction: TYPE_INTERACTIONS.map((code) => ({ code })),
      versioning: 'versioned-update',
      readHistory: true,
      updateCreate: true,
      conditionalCreate: true,
      conditionalRead: 'full-support',
      conditionalUpdate: true,
      conditionalDelete: 'single',
      referencePolicy: ['literal', 'logical'],
      searchInclude: ['*', ...references.map((p) => `${type}:${p.code}`)],
      searchRevInclude: revIncludes,
      searchParam: [
        ...params.map((p) => ({
          name: p.code,
          definition: p.url,
          type: p.type,
          ...(p.description ? { documentation: p.description.slice(0, 300) } : {}),
        })),
      ],
      ...(typeOperations.length
        ? { operation: typeOperations.map((o) => ({ name: o.name, definition: o.definition })) }
        : {}),
    } as CapabilityStatementRestResource;
  });
  const statement: CapabilityStatement = {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'Samplan',
    kind: 'instance',
    software: { name: server.name, version: server.version },
    implementation: { description: 'Samplan — shared treatment and self-treatment plans', url: ctx.baseUrl },
    fhirVersion: FHIR_VERSION,
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        documentation: 'Unknown search parameters are ignored unless the request says Prefer: handling=strict.',
        resource: resources,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }, { code: 'history-system' }],
        searchParam: baseParams.map((p) => ({ name: p.code, definition: p.url, type: p.type })),
        operation: operations.filter((o) => o.system).map((o) => ({ name: o.name, definition: o.definition })),
      },
    ],
  };
  cached = { baseUrl: ctx.baseUrl, text: JSON.stringify(statement) };
  return cached.text;
}
