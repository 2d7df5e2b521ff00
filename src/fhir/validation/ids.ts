/**
 * Resource ids. R4 types `Resource.id` as System.String (with the `id` format in prose only), so
 * Medplum's validator does not apply the id pattern; ids are URL path segments in Samplan, so
 * every resource (root, contained, nested) is held to `[A-Za-z0-9\-.]{1,64}`.
 */
import { validationIssue, type Issues } from './issues.js';
import type { ResourceNode, Visitor } from './walk.js';

const ID_CHARS = /^[A-Za-z0-9\-.]+$/;

export function idsVisitor(issues: Issues): Visitor {
  return {
    resource(node: ResourceNode): void {
      const id = (node.value as Record<string, unknown>).id;
      if (typeof id !== 'string') return; // absent, or a JSON type error Medplum reports
      const problem = !ID_CHARS.test(id) ? `Invalid characters ('${id}')` : id.length > 64 ? `Too long (${id.length} chars)` : undefined;
      if (problem) {
        issues.push(validationIssue('error', 'invalid', `Invalid Resource id: ${problem}; an id is 1 to 64 of A-Z, a-z, 0-9, '-' and '.'`, `${node.path}.id`));
      }
    },
  };
}
