/**
 * Contained resources: `validateContains: 'IGNORE'` leaves them out of validation entirely, and
 * otherwise dom-3 is enforced: a contained resource must be referenced from its container (or
 * refer to it with `#`). Medplum skips dom-3 because its FHIRPath needs `descendants()`; here it
 * falls out of the single walk over the instance.
 */
import { validationIssue, type Issues } from './issues.js';
import { type Node, type ResourceNode, type Visitor } from './walk.js';

/** A shallow copy of the resource without `contained`, for the IGNORE mode. */
export function withoutContained(resource: Record<string, unknown>): Record<string, unknown> {
  if (!('contained' in resource)) return resource;
  const { contained: _ignored, ...rest } = resource;
  return rest;
}

const REFERENCE_TYPES = new Set(['canonical', 'uri', 'url']);

export function containedVisitor(issues: Issues): Visitor {
  const containers = new Map<ResourceNode, { refs: Set<string>; contained: ResourceNode[] }>();
  const selfReferencing = new Set<ResourceNode>();
  const entry = (container: ResourceNode) => {
    let e = containers.get(container);
    if (!e) containers.set(container, (e = { refs: new Set(), contained: [] }));
    return e;
  };
  return {
    resource(node: ResourceNode): void {
      if (node.container) entry(node.container).contained.push(node);
    },
    value(node: Node): void {
      const isReference = node.property?.elementPath === 'Reference.reference' || REFERENCE_TYPES.has(node.type);
      if (!isReference || typeof node.value !== 'string' || !node.value.startsWith('#')) return;
      const resource = node.resource;
      if (node.value === '#' && resource.container) selfReferencing.add(resource);
      else entry(resource.container ?? resource).refs.add(node.value.slice(1));
    },
    end(): void {
      for (const { refs, contained } of containers.values()) {
        for (const c of contained) {
          const id = (c.value as Record<string, unknown>).id;
          if ((typeof id === 'string' && refs.has(id)) || selfReferencing.has(c)) continue;
          issues.push(
            validationIssue(
              'error',
              'invalid',
              `The contained resource${typeof id === 'string' ? ` '${id}'` : ' (without id)'} is not referenced from elsewhere in the containing resource nor does it refer to the containing resource (dom-3)`,
              c.path,
            ),
          );
        }
      }
    },
  };
}
