/**
 * API errors: every failure answers `{ "error": { "code", "message" } }` (plus `errors` with one
 * line per problem where there are several, e.g. an entry with three bad fields).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { errors?: string[]; retryAfterS?: number } = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function errorBody(code: string, message: string, errors?: string[]): { error: { code: string; message: string; errors?: string[] } } {
  return { error: errors && errors.length > 0 ? { code, message, errors } : { code, message } };
}

/** Code for a status when the error did not come with one (fastify's own errors). */
export function codeForStatus(status: number): string {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 408:
      return "request_timeout";
    case 409:
      return "conflict";
    case 412:
      return "precondition_failed";
    case 413:
      return "payload_too_large";
    case 415:
      return "unsupported_media_type";
    case 422:
      return "invalid_route";
    case 429:
      return "rate_limited";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "bad_request";
  }
}
