/**
 * Label templating for network service matches (NSM matchutils.processLabels): a selector
 * value is rendered as a Go text/template with the request's labels map as data, and a parse
 * or execution error leaves the value as written.
 *
 * Only the forms NSM deployments use are implemented, with Go's exact results:
 *   {{.key}}  {{ .key }}       the label, or "<no value>" if the request has no such label
 *   {{index . "key"}}          the label, or "" if missing (also with a `raw` string)
 *   {{/* comment *\/}}          nothing
 *   {{- ... -}}                trims the whitespace before / after the action
 * Text outside actions is copied. Anything else inside {{ }} (pipelines, functions, chained
 * fields) is treated as an error, so the value stays literal.
 */

class TemplateError extends Error {}

const NO_VALUE = '<no value>';
const FIELD = /^\.([A-Za-z_][A-Za-z0-9_]*)$/;
const INDEX = /^index\s+\.\s+("(?:[^"\\\n]|\\.)*"|`[^`]*`)$/;

function has(vars: Record<string, string> | undefined, key: string): vars is Record<string, string> {
  return !!vars && Object.prototype.hasOwnProperty.call(vars, key);
}

function unquote(lit: string): string {
  if (lit.startsWith('`')) return lit.slice(1, -1);
  try {
    const v: unknown = JSON.parse(lit);
    if (typeof v === 'string') return v;
  } catch {
    // fall through
  }
  throw new TemplateError(`bad string ${lit}`);
}

function evalAction(action: string, vars: Record<string, string> | undefined): string {
  if (action.startsWith('/*') && action.endsWith('*/')) return '';
  const field = FIELD.exec(action);
  if (field) {
    const key = field[1]!;
    return has(vars, key) ? vars[key]! : NO_VALUE;
  }
  const index = INDEX.exec(action);
  if (index) {
    const key = unquote(index[1]!);
    return has(vars, key) ? vars[key]! : '';
  }
  throw new TemplateError(`unsupported action {{${action}}}`);
}

/** The end of the action starting at `from` (index of its "}}"), skipping quoted strings. */
function actionEnd(s: string, from: number): number {
  for (let k = from; k < s.length; k++) {
    const c = s[k];
    if (c === '"') {
      for (k++; k < s.length && s[k] !== '"'; k++) if (s[k] === '\\') k++;
      if (k >= s.length) break;
    } else if (c === '`') {
      k = s.indexOf('`', k + 1);
      if (k < 0) break;
    } else if (c === '}' && s[k + 1] === '}') {
      return k;
    }
  }
  throw new TemplateError('unclosed action');
}

const SPACE = /[ \t\r\n]/;

function render(s: string, vars: Record<string, string> | undefined): string {
  let out = '';
  let i = 0;
  for (;;) {
    const open = s.indexOf('{{', i);
    if (open < 0) return out + s.slice(i);
    let text = s.slice(i, open);
    let start = open + 2;
    if (s[start] === '-' && SPACE.test(s[start + 1] ?? '')) {
      text = text.replace(/[ \t\r\n]+$/, '');
      start++;
    }
    out += text;
    const close = actionEnd(s, start);
    let inner = s.slice(start, close);
    let trimAfter = false;
    if (inner.endsWith('-') && SPACE.test(inner[inner.length - 2] ?? '')) {
      trimAfter = true;
      inner = inner.slice(0, -1);
    }
    const action = inner.trim();
    if (action === '') throw new TemplateError('missing value for command');
    out += evalAction(action, vars);
    i = close + 2;
    if (trimAfter) while (i < s.length && SPACE.test(s[i]!)) i++;
  }
}

/** `str` rendered with the request labels, or `str` itself if it is not a valid template. */
export function processLabels(str: string, vars: Record<string, string> | undefined): string {
  if (!str.includes('{{')) return str;
  try {
    return render(str, vars);
  } catch (err) {
    if (err instanceof TemplateError) return str;
    throw err;
  }
}
