/**
 * Issue helpers shared by the validation modules: every finding carries the Samplan
 * `VALIDATION_ERROR` code so clients can tell validation failures from other 4xx answers.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { ErrorCode, issue, type IssueSeverity, type IssueType } from '../outcomes.js';

export type Issues = OperationOutcomeIssue[];

export function validationIssue(
  severity: IssueSeverity,
  code: IssueType,
  message: string,
  expression: string,
): OperationOutcomeIssue {
  return issue({ severity, code, message, expression, errorCode: ErrorCode.ValidationError });
}

/** Drops repeats: base-type and profile validation report many of the same findings. */
export function dedupe(issues: Issues): Issues {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.severity}|${i.expression?.join(',') ?? ''}|${i.details?.text ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
