/**
 * The OperationDefinitions of Samplan's own operations, generated from the Operation objects the
 * engine runs: the code, the resource type, the invocation levels (system, type, instance) from
 * the object itself, so the published definition cannot drift from what the router accepts; the
 * title, description, parameters and affectsState from the `spec` written beside each handler.
 *
 * Operations defined by FHIR or an implementation guide (`$validate`, Bulk Data `$export`, the
 * Subscriptions Backport `$status`) keep their canonical URLs and are not published here.
 */
import type { OperationDefinition, OperationDefinitionParameter } from '@medplum/fhirtypes';
import type { Operation, OperationParameter } from '../../fhir/operations.js';
import { SAMPLAN } from '../conventions.js';
import { common } from './meta.js';

/** Whether Samplan defines (and so publishes) the operation: its definition is a Samplan canonical URL. */
export const isSamplanOperation = (op: Pick<Operation, 'definition'>): boolean => op.definition.startsWith(`${SAMPLAN}/OperationDefinition/`);

function parameter(p: OperationParameter): OperationDefinitionParameter {
  return {
    name: p.name,
    use: p.use,
    min: p.min,
    max: p.max,
    documentation: p.documentation,
    ...(p.type ? { type: p.type } : {}),
    ...(p.searchType ? { searchType: p.searchType } : {}),
    ...(p.part ? { part: p.part.map(parameter) } : {}),
  } as OperationDefinitionParameter;
}

/** `$plan-status` → `PlanStatus`. */
const computableName = (code: string) => code.replace(/(^|-)([a-z])/g, (_, _d, c: string) => c.toUpperCase());

export function operationDefinition(op: Operation): OperationDefinition {
  if (!isSamplanOperation(op)) throw new Error(`$${op.name} is defined by ${op.definition}, not by Samplan`);
  const spec = op.spec;
  if (!spec) throw new Error(`$${op.name} (${op.definition}) has no spec to publish as its OperationDefinition`);
  const id = op.definition.slice(`${SAMPLAN}/OperationDefinition/`.length);
  return {
    resourceType: 'OperationDefinition',
    id,
    url: op.definition,
    name: computableName(op.name),
    title: spec.title,
    ...common,
    kind: 'operation',
    description: spec.description,
    affectsState: spec.affectsState,
    code: op.name,
    ...(spec.comment ? { comment: spec.comment } : {}),
    ...(spec.base ? { base: spec.base } : {}),
    ...(op.typeLevel || op.instance ? { resource: [(op.type ?? 'Resource') as NonNullable<OperationDefinition['resource']>[number]] } : {}),
    system: op.system,
    type: op.typeLevel,
    instance: op.instance,
    ...(spec.parameter.length ? { parameter: spec.parameter.map(parameter) } : {}),
  };
}

/** The OperationDefinitions of the Samplan operations among `operations` (one per canonical URL). */
export function operationDefinitions(operations: readonly Operation[]): OperationDefinition[] {
  const byUrl = new Map<string, OperationDefinition>();
  for (const op of operations) if (isSamplanOperation(op) && !byUrl.has(op.definition)) byUrl.set(op.definition, operationDefinition(op));
  return [...byUrl.values()];
}
