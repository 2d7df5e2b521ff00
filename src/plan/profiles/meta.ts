/** What every conformance resource Samplan publishes says about itself: version, date, publisher. */
export const CONFORMANCE_VERSION = '0.1.0';
export const CONFORMANCE_DATE = '2026-11-26';

export const common = {
  version: CONFORMANCE_VERSION,
  status: 'active' as const,
  date: CONFORMANCE_DATE,
  publisher: 'Samplan',
};
