/**
 * "This row is in one of these patients' compartments", phrased for the planner.
 *
 * The plain phrasing, `compartments && $refs`, is answered by a GIN index, but every statement is
 * planned once for any values (SESSION_SETTINGS in db.ts), and for an array operator against a
 * parameter PostgreSQL assumes that 1 % of the table matches. With that guess it preferred walking
 * every resource of the type, or every resource, in rid order and filtering: a citizen's
 * `GET CarePlan` took 1.5 s at 30,000 patients (docs/performance.md, 28 November).
 *
 * Nearly every resource is in one compartment, so the rule is split in two (migration 019):
 * - the first compartment, equal to one of the references: a B-tree on
 *   `(compartments[1], type, rid)`, whose statistics tell the planner how few rows a patient has;
 * - any other compartment of a resource that has several (a Provenance of a transaction that
 *   touched several patients): a GIN index on those rows only, a few in a million, which the
 *   planner knows from the statistics on `cardinality(compartments)`.
 * Together they are exactly `compartments && refs`: a row that overlaps `refs` either has its
 * first compartment in it, or another, and then it has more than one.
 *
 * `phrase` is Kysely's `sql` for a fragment, or `String.raw` for a statement written as text; the
 * row's statement must also say `NOT deleted` (both indexes hold live rows only).
 */
export function inCompartments<T>(phrase: (strings: TemplateStringsArray, ...values: unknown[]) => T, compartments: unknown, refs: unknown): T {
  return phrase`(${compartments}[1] = ANY(${refs}) OR (cardinality(${compartments}) > 1 AND ${compartments} && ${refs}))`;
}
