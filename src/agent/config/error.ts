/** A configuration file that cannot be used: the file, the key (empty: the whole file) and why. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly key: string,
    readonly reason: string,
  ) {
    super(key ? `${file}: ${key}: ${reason}` : `${file}: ${reason}`);
  }
}
