// Secrets never printed: every URL that reaches a log line or the terminal goes through maskUrl.

/** Query parameters whose value is a secret: a password (tlsCertificateKeyFilePassword), a token, a signature. */
const SECRET_PARAM = /([?&;][^=&#;]*(?:pass|pwd|secret|token|signature|credential)[^=&#;]*=)[^&#;]*/gi;

/**
 * The URL with every credential replaced by `***`, for logs and output: the password of
 * `user:password@host` (one holding `@`, `:` or `/` too: the credentials end at the last `@`), a
 * username-only token (`token@host`), and query parameters that hold a secret. The rest is kept as
 * given; when in doubt more is masked, never less.
 */
export function maskUrl(raw: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([\s\S]*)$/i.exec(raw);
  if (!m) return raw.replace(SECRET_PARAM, '$1***');
  const [, scheme, rest] = m as unknown as [string, string, string];
  const at = rest.lastIndexOf('@');
  if (at < 0) return scheme + rest.replace(SECRET_PARAM, '$1***');
  const credentials = rest.slice(0, at);
  const colon = credentials.indexOf(':');
  const shown = colon < 0 ? '***' : `${credentials.slice(0, colon)}:***`;
  return `${scheme}${shown}${rest.slice(at).replace(SECRET_PARAM, '$1***')}`;
}
