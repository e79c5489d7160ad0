/** metav1.Status bodies, shaped as the real API server writes them. */

export interface StatusBody {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure';
  readonly message: string;
  readonly reason: string;
  readonly code: number;
  readonly details?: { readonly name?: string; readonly kind?: string; readonly group?: string };
}

const REASONS: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  410: 'Expired',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export function status(code: number, message: string, reason?: string, details?: StatusBody['details']): StatusBody {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: reason ?? REASONS[code] ?? 'Unknown',
    code,
    ...(details ? { details } : {}),
  };
}

/** The ERROR event object a watch gets when its resourceVersion is older than the history (watch cache). */
export function tooOldResourceVersion(requested: number, floor: number): StatusBody {
  return status(410, `too old resource version: ${requested} (${floor})`, 'Expired');
}

/** The 410 a LIST gets for a continue token whose snapshot is gone (upstream's wording). */
export function continueExpired(): StatusBody {
  return status(
    410,
    'The provided continue parameter is too old to display a consistent list result. You can start a new list without ' +
      'the continue parameter, or use the continue token in this response to retrieve the remainder of the results. ' +
      'Continuing with the provided token results in an inconsistent list - objects that were created, modified, or ' +
      'deleted between the time the first chunk was returned and now may show up in the list.',
    'Expired',
  );
}
