/**
 * One typed pass over a resource instance that the Samplan checks (bindings, extensions,
 * narrative, security, ids, contained) hook into. Medplum's validator does not expose its own
 * traversal with instance paths and element types, and walking once for all checks keeps the
 * per-write cost to a single pass.
 *
 * Paths are FHIRPath-like with array indexes and JSON property names (`Observation.valueQuantity`),
 * so that they point at exactly the JSON the client sent. Unknown properties, cardinality and
 * primitive formats are left to Medplum's structural validation; values of the wrong JSON shape
 * (a string for a HumanName, a contained resource of unknown type) are reported here, because
 * Medplum reports them confusingly or stops validating altogether.
 */
import { definitions } from '../definitions.js';
import { validationIssue, type Issues } from './issues.js';
import { typeIndex, type PropertyInfo } from './schema.js';

export interface Node {
  readonly value: unknown;
  /** FHIR type code: `HumanName`, `code`, `Patient`, `PatientContact`, ... */
  readonly type: string;
  /** Instance path, e.g. `Patient.name[0].family`. */
  readonly path: string;
  /** Definition path of the element (`HumanName.family`), or the type for a resource. */
  readonly elementPath: string;
  /** Definition path from the enclosing resource (`Patient.name.family`). */
  readonly rootedPath: string;
  /** The element this value sits in; undefined for the root resource. */
  readonly property?: PropertyInfo;
  /** The element holding this one; for extensions, the element they extend. */
  readonly parent?: Node;
  /** The nearest resource (for a resource node, itself). */
  readonly resource: ResourceNode;
}

export interface ResourceNode extends Node {
  /** For a contained resource: the resource that contains it. */
  readonly container?: ResourceNode;
}

export interface Visitor {
  /** Every resource: the root, contained ones and nested ones (Bundle entries, Parameters). */
  resource?(node: ResourceNode): void;
  /** Every element value, primitive or complex. Primitive extensions (`_birthDate`) are walked
   * as children of the primitive's node, without a visit of their own. */
  value?(node: Node): void;
  /** Called once after the walk. */
  end?(): void;
}

export interface WalkOptions {
  /** Skip `contained` resources entirely (validateContains = IGNORE). */
  readonly skipContained?: boolean;
}

/**
 * Walks `resource` (already known to be an object with a concrete resourceType). Nested values
 * that cannot be walked as their declared type are reported as issues, and their paths are
 * returned so that the same problem is not also reported by Medplum in its own words.
 */
export function walk(resource: Record<string, unknown>, visitors: readonly Visitor[], options: WalkOptions, issues: Issues): string[] {
  const walker = new Walker(visitors, options, issues);
  const type = resource.resourceType as string;
  walker.visitResource(resourceNode({ value: resource, type, path: type, elementPath: type, rootedPath: type }));
  for (const v of visitors) v.end?.();
  return walker.broken;
}

function resourceNode(fields: Omit<ResourceNode, 'resource'>): ResourceNode {
  const node = fields as { -readonly [K in keyof ResourceNode]?: ResourceNode[K] };
  node.resource = node as ResourceNode;
  return node as ResourceNode;
}

/** A class rather than closures: this runs on every write, and per-call closures cost. */
class Walker {
  readonly broken: string[] = [];
  private readonly valueVisitors: Visitor[];
  private readonly resourceVisitors: Visitor[];

  constructor(
    visitors: readonly Visitor[],
    private readonly options: WalkOptions,
    private readonly issues: Issues,
  ) {
    this.valueVisitors = visitors.filter((v) => v.value);
    this.resourceVisitors = visitors.filter((v) => v.resource);
  }

  visitResource(node: ResourceNode): void {
    for (const v of this.resourceVisitors) v.resource?.(node);
    this.walkObject(node.value as Record<string, unknown>, node, node.type);
  }

  private visit(node: Node): void {
    for (const v of this.valueVisitors) v.value?.(node);
  }

  private walkObject(obj: Record<string, unknown>, node: Node, indexType: string): void {
    const index = typeIndex(indexType);
    if (!index) return;
    for (const key in obj) {
      const primitiveExtension = key.charCodeAt(0) === 95; // '_'
      const name = primitiveExtension ? key.slice(1) : key;
      const property = index.properties.get(name);
      if (!property) continue;
      const value = obj[key];
      const path = `${node.path}.${name}`;
      const rootedPath = `${node.rootedPath}.${property.name}`;
      if (primitiveExtension && Array.isArray(value) !== property.isArray) {
        // Medplum checks this for `field` but not for `_field` (and fails on it)
        this.wrongShape(value, path, property.isArray ? `an array for _${name}, as ${name} repeats` : `a JSON object for _${name}`);
      } else if (Array.isArray(value)) {
        // FHIR JSON never has empty arrays: an absent element is left out, not written as [].
        if (value.length === 0) this.wrongShape(value, path, `at least one value for ${name} (leave an empty element out)`);
        for (let i = 0; i < value.length; i++) {
          this.visitValue(value[i], `${path}[${i}]`, rootedPath, property, node, primitiveExtension);
        }
      } else if (property.isArray && !primitiveExtension && isObject(value) && isEmpty(value)) {
        // Medplum refuses an object where an array belongs, but lets an empty one through (`"coding": {}`).
        this.wrongShape(value, path, `an array for ${name}`);
      } else {
        this.visitValue(value, path, rootedPath, property, node, primitiveExtension);
      }
    }
  }

  private visitValue(value: unknown, path: string, rootedPath: string, property: PropertyInfo, parent: Node, primitiveExtension: boolean): void {
    if (value === null || value === undefined) return;
    if (primitiveExtension) {
      // `_field` holds the id/extensions of the primitive `field`: walk them as the primitive's.
      if (isObject(value)) this.walkObject(value, this.node(value, property.type, path, rootedPath, property, parent), 'Element');
      else this.wrongShape(value, path, `a JSON object with the id and extensions of ${property.name}`);
    } else if (property.isPrimitive) {
      if (typeof value === 'object') this.wrongShape(value, path, `a ${property.type} value`);
      else this.visit(this.node(value, property.type, path, rootedPath, property, parent));
    } else if (!isObject(value)) {
      this.wrongShape(value, path, `a JSON object (${property.type})`);
    } else if (property.type === 'Resource') {
      this.visitNestedResource(value, path, property, parent);
    } else {
      const node = this.node(value, property.type, path, rootedPath, property, parent);
      this.visit(node);
      this.walkObject(value, node, property.type);
    }
  }

  private visitNestedResource(value: Record<string, unknown>, path: string, property: PropertyInfo, parent: Node): void {
    const type = value.resourceType;
    if (typeof type !== 'string' || !definitions().isResourceType(type)) {
      this.broken.push(path);
      const found = typeof type === 'string' ? `resourceType "${type}"` : 'no resourceType';
      this.issues.push(validationIssue('error', 'structure', `Expected a FHIR resource with a known resourceType but found ${found}`, path));
      return;
    }
    const contained = property.elementPath.endsWith('.contained');
    if (contained && this.options.skipContained) return;
    const node = resourceNode({
      value, type, path, elementPath: type, rootedPath: type, property, parent,
      ...(contained ? { container: parent.resource } : {}),
    });
    this.visit(node);
    this.visitResource(node);
  }

  private node(value: unknown, type: string, path: string, rootedPath: string, property: PropertyInfo, parent: Node): Node {
    return { value, type, path, elementPath: property.elementPath, rootedPath, property, parent, resource: parent.resource };
  }

  private wrongShape(value: unknown, path: string, expected: string): void {
    this.broken.push(path);
    this.issues.push(validationIssue('error', 'structure', `Expected ${expected} but found ${describe(value)}`, path));
  }
}

function isEmpty(value: Record<string, unknown>): boolean {
  for (const _ in value) return false;
  return true;
}

/** Null, an empty string, object or array: Medplum reads some of those as absent, others as errors. */
export function isAbsent(value: unknown): boolean {
  if (value === null || value === undefined || value === '') return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && isEmpty(value as Record<string, unknown>);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (Array.isArray(value) && value.length === 0) return 'an empty array';
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
