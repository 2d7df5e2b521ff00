/**
 * Profiles and extension definitions made known at run time (Samplan's own and its partners'),
 * on top of the R4 core definitions.
 */
import { loadDataType } from '@medplum/core';
import type { StructureDefinition } from '@medplum/fhirtypes';
import { definitions } from '../definitions.js';
import { compileProfile, type ProfileConstraints } from './profile-constraints.js';
import { unversioned } from './schema.js';

export interface ResourceProfile {
  readonly sd: StructureDefinition;
  /** Required bindings the profile states, by definition path without `[x]` (`Observation.value`). */
  readonly bindings: ReadonlyMap<string, string>;
  /** What the profile states beyond the base definition, worked out at registration (profile-constraints.ts). */
  readonly constraints: ProfileConstraints;
}

const resourceProfiles = new Map<string, ResourceProfile>();
const extensionDefinitions = new Map<string, StructureDefinition>();
const listeners: Array<(url: string) => void> = [];

/**
 * Makes a profile known. Extension definitions (type `Extension`) may have a snapshot or only a
 * differential; other profiles need a snapshot, which is compared with the base definition here,
 * once, to know what to check on every write.
 * Throws for a definition that cannot be used: registering is configuration, not input.
 */
export function registerProfile(sd: StructureDefinition): void {
  if (sd?.resourceType !== 'StructureDefinition' || !sd.url || !sd.type) {
    throw new Error('registerProfile needs a StructureDefinition with url and type');
  }
  const url = unversioned(sd.url);
  if (sd.type === 'Extension') {
    extensionDefinitions.set(url, sd);
  } else {
    if (!sd.snapshot?.element?.length) {
      throw new Error(`Profile ${url} has no snapshot; generate one (e.g. with the IG publisher or SUSHI) before registering it`);
    }
    if (!definitions().isResourceType(sd.type)) {
      throw new Error(`Profile ${url} constrains ${sd.type}, which is not a resource type`);
    }
    loadDataType({ ...sd, name: sd.name ?? sd.id ?? url });
    resourceProfiles.set(url, { sd, bindings: requiredBindings(sd), constraints: compileProfile(sd) });
  }
  for (const listener of listeners) listener(url);
}

/** Lets caches keyed by canonical URL forget an entry when its definition is (re)registered. */
export function onProfileRegistered(listener: (url: string) => void): void {
  listeners.push(listener);
}

/** The registered resource profiles (not extension definitions), e.g. for the CapabilityStatement's supportedProfile. */
export function registeredProfiles(): StructureDefinition[] {
  return [...resourceProfiles.values()].map((p) => p.sd);
}

export function resourceProfile(canonical: string): ResourceProfile | undefined {
  return resourceProfiles.get(unversioned(canonical));
}

/** A registered or core R4 extension definition. */
export function extensionDefinition(url: string): StructureDefinition | undefined {
  return extensionDefinitions.get(url) ?? definitions().extensions.get(url);
}

/** True for the canonical URL of an R4 base type (`.../StructureDefinition/Patient`): nothing to add. */
export function isBaseDefinition(canonical: string, type: string): boolean {
  return unversioned(canonical) === `http://hl7.org/fhir/StructureDefinition/${type}`;
}

function requiredBindings(sd: StructureDefinition): Map<string, string> {
  const bindings = new Map<string, string>();
  for (const element of sd.snapshot?.element ?? []) {
    const { binding, path, id } = element;
    if (binding?.strength !== 'required' || !binding.valueSet || !path || id?.includes(':')) continue;
    bindings.set(path.replace(/\[x]/g, ''), unversioned(binding.valueSet));
  }
  return bindings;
}
