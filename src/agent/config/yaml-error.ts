/**
 * YAML parse errors in the agent's words: where (line and column) and what, without the yaml
 * package's trailing ` at line N, column M:` and its source excerpt.
 */
import type { YAMLError } from 'yaml';

/** By the yaml package's error code; a code not listed keeps the package's first line. */
const OWN_WORDS: Record<string, string> = {
  DUPLICATE_KEY: 'a key appears twice in the same map',
  TAB_AS_INDENT: 'tabs are not allowed for indentation; use spaces',
  BAD_INDENT: 'wrong indentation',
  BLOCK_AS_IMPLICIT_KEY: 'a nested map is not allowed on the same line as its key',
  MULTILINE_IMPLICIT_KEY: 'a key must be on one line',
  MULTIPLE_DOCS: 'more than one document where one is expected',
  BAD_DQ_ESCAPE: 'an invalid escape in a double-quoted string',
  BAD_SCALAR_START: 'a value cannot start with this character; quote it',
  KEY_OVER_1024_CHARS: 'a key longer than 1024 characters',
  UNEXPECTED_TOKEN: 'unexpected characters',
  BAD_ALIAS: 'an alias to an unknown anchor',
  NON_STRING_KEY: 'a key that is not a string',
};

/** `line 3, column 1` and the reason, e.g. `Map keys must be unique`. */
export function yamlErrorText(err: YAMLError): { where: string; reason: string } {
  const pos = err.linePos?.[0];
  const first = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?\s*$/, '').trim();
  const reason = OWN_WORDS[err.code] ?? (first ? first.charAt(0).toLowerCase() + first.slice(1) : 'not valid YAML');
  return { where: pos ? `line ${pos.line}, column ${pos.col}` : '', reason };
}

/** An error of turning a parsed document into values (aliases), in our words. */
export function yamlValueError(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  if (/Unresolved alias/.test(m)) return `an alias to an anchor that is not defined before it (${m.replace(/^.*: /, '')})`;
  if (/Excessive alias count/.test(m)) return 'too many aliases';
  return m.split('\n')[0] ?? 'not valid YAML';
}
