import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';

/**
 * An alarm on something that should never happen: one in a period pages, and no data (a counter published
 * only when it counts) is nothing to page about. Spread into the alarm's props after its metric.
 */
export const PAGES_ON_ANY = {
  threshold: 1,
  comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
  evaluationPeriods: 1,
  treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
} as const satisfies Partial<cloudwatch.AlarmProps>;
