/**
 * Resource validation for writes and `$validate`: Medplum's structural validator plus Samplan's
 * checks (required bindings, extensions, narrative, markup in text, ids, contained resources,
 * the invariants Medplum skips), against the base R4 type and any registered profiles the caller
 * or the resource names (what a profile adds to the base is checked by profile-constraints.ts).
 * Samplan's checks run in one walk over the instance, which also tells whether Medplum would find
 * anything (structure.ts); only then is Medplum's validator run.
 * The first call loads the R4 definitions and terminology (a second or so).
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { definitions } from '../definitions.js';
import { bindingsVisitor } from './bindings.js';
import { containedVisitor, withoutContained } from './contained.js';
import { extensionsVisitor } from './extensions.js';
import { idsVisitor } from './ids.js';
import { invariantsVisitor } from './invariants.js';
import { dedupe, validationIssue, type Issues } from './issues.js';
import { isIncomplete, medplumIssues, sliceIssues } from './medplum.js';
import { narrativeVisitor } from './narrative.js';
import { profileVisitor } from './profile-constraints.js';
import { isBaseDefinition, resourceProfile, type ResourceProfile } from './profiles.js';
import { securityVisitor } from './security.js';
import { structureCheck } from './structure.js';
import { isObject, walk } from './walk.js';

export { setAllowedExtensionDomains } from './extensions.js';
export { registerProfile } from './profiles.js';

export interface ValidateOptions {
  /** A profile (StructureDefinition canonical URL) to validate against, on top of the base type. */
  profile?: string;
  /** How contained resources are checked: validated fully (default) or ignored. */
  validateContains?: 'CHECK_VALID' | 'IGNORE';
}

/** All issues (errors and warnings) for a parsed JSON value claimed to be a FHIR R4 resource. Never throws for bad input. */
export function validateResource(resource: unknown, options: ValidateOptions = {}): OperationOutcomeIssue[] {
  const defs = definitions();
  const rootProblem = checkRoot(resource, defs.isResourceType);
  if (rootProblem) return [rootProblem];
  const input = resource as Record<string, unknown>;
  const type = input.resourceType as string;
  const target = options.validateContains === 'IGNORE' ? withoutContained(input) : input;

  const issues: Issues = [];
  const profiles = selectProfiles(input, type, options.profile, issues);
  const bindings = new Map<string, string>();
  for (const p of profiles) for (const [path, vs] of p.bindings) bindings.set(path, vs);

  const ownIssues: Issues = [];
  const referenceErrors = new Set<string>();
  const structure = structureCheck();
  const visitors = [
    idsVisitor(ownIssues),
    bindingsVisitor(ownIssues, bindings),
    extensionsVisitor(ownIssues),
    narrativeVisitor(ownIssues),
    securityVisitor(ownIssues),
    containedVisitor(ownIssues),
    invariantsVisitor(ownIssues),
    structure,
  ];
  if (profiles.length) {
    const constraints = profiles.map((p) => p.constraints);
    visitors.push(profileVisitor(ownIssues, constraints, (url) => resourceProfile(url)?.sd.type, referenceErrors));
  }
  // The walk sees the contained resources (for references to them) but skips validating them.
  const broken = walk(input, visitors, { skipContained: options.validateContains === 'IGNORE' }, ownIssues);

  // The base type by Medplum, unless the walk found nothing it would (structure.ts); of a profile,
  // Medplum checks only the slicing (profile-constraints.ts).
  const base = !broken.length && structure.clean ? [] : medplumIssues(target);
  const structural = [...base, ...profiles.flatMap((p) => (p.constraints.slicing ? sliceIssues(target, p.constraints.slicing) : []))];
  // Where the walk found a value of the wrong shape (a string for a HumanName, a contained
  // resource of unknown type), Medplum's findings there are noise or an aborted run. Where a
  // profile refuses a reference's type, the base validation's warning about it is a repeat.
  // By the path's ancestors in a set: comparing each issue with each broken value took quadratic
  // time, and an array of thousands of wrong values blocked the server for minutes.
  const brokenAt = new Set(broken);
  const underBroken = (at: string) => brokenAt.has(at) || [...at.matchAll(/[.[]/g)].some((m) => brokenAt.has(at.slice(0, m.index)));
  const relevant = broken.length || referenceErrors.size
    ? structural.filter((i) => {
        const at = i.expression?.[0] ?? '';
        if (referenceErrors.has(at) && i.severity === 'warning' && i.details?.text?.startsWith('Invalid reference')) return false;
        return !broken.length || (!isIncomplete(i) && !underBroken(at));
      })
    : structural;
  return dedupe([...issues, ...relevant, ...ownIssues]);
}

/** True if any issue is an error or fatal. */
export function hasErrors(issues: OperationOutcomeIssue[]): boolean {
  return issues.some((i) => i.severity === 'error' || i.severity === 'fatal');
}

function checkRoot(resource: unknown, isResourceType: (t: string) => boolean): OperationOutcomeIssue | undefined {
  if (!isObject(resource)) {
    const found = resource === null ? 'null' : Array.isArray(resource) ? 'an array' : `a ${typeof resource}`;
    return validationIssue('error', 'structure', `A FHIR resource must be a JSON object, but found ${found}`, '$this');
  }
  const type = resource.resourceType;
  if (type === undefined) return validationIssue('error', 'structure', 'The resource has no resourceType', 'resourceType');
  if (typeof type !== 'string' || !isResourceType(type)) {
    return validationIssue('error', 'structure', `${JSON.stringify(type)} is not a FHIR R4 resource type`, 'resourceType');
  }
  return undefined;
}

/** The registered profiles to apply: the requested one and those in meta.profile. */
function selectProfiles(resource: Record<string, unknown>, type: string, requested: string | undefined, issues: Issues): ResourceProfile[] {
  const selected: ResourceProfile[] = [];
  const use = (url: string, declared: boolean, at: string): void => {
    if (isBaseDefinition(url, type)) return;
    const profile = resourceProfile(url);
    if (!profile) {
      issues.push(
        declared
          ? validationIssue('warning', 'not-found', `Profile ${url} has not been checked because it is not known to this server`, at)
          : validationIssue('error', 'not-found', `Profile ${url} is not known to this server`, at),
      );
    } else if (profile.sd.type !== type) {
      issues.push(validationIssue('error', 'invalid', `Profile ${url} is for ${profile.sd.type}, not ${type}`, at));
    } else if (!selected.includes(profile)) {
      selected.push(profile);
    }
  };
  if (requested) use(requested, false, type);
  const meta = resource.meta;
  const declared = isObject(meta) && Array.isArray(meta.profile) ? meta.profile : [];
  declared.forEach((url, i) => {
    if (typeof url === 'string') use(url, true, `${type}.meta.profile[${i}]`);
  });
  return selected;
}
