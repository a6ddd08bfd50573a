/**
 * `modelfile generate` file classification (modelpack.md §7.2): modctl's four pattern lists as data, matched against
 * the lower-cased base name with Go `path.Match` semantics, first match wins in the order CONFIG → MODEL → CODE → DOC;
 * no match: larger than 128 MB (SI) → MODEL, else CODE. The lists reproduce modctl `pkg/modelfile/constants.go`
 * (after #460, #499, #529: 36 / 69 / 140 / 104 patterns), including its duplicates (`*.meta` and `*.xml` appear in
 * two lists; the earlier list wins) so that `# Supported file types` lines read like modctl's. Pure: no IO.
 */

export type GeneratedKind = 'config' | 'model' | 'code' | 'doc';

export const CONFIG_PATTERNS: readonly string[] = [
  '*.json', '*.jsonl', '*.json5', '*.jsonc', '*.yaml', '*.yml', '*.toml', '*.ini', '*.config', '*.cfg', '*.conf',
  '*.properties', '*.props', '*.prop', '*.xml', '*.xsd', '*.rng',
  // model-specific
  '*.modelcard', '*.meta', '*tokenizer.model*', '*.tiktoken', 'vocab.txt', 'merges.txt', 'added_tokens.txt',
  'spiece.model', 'sentencepiece*.model', 'sentencepiece*.vocab', 'tiktoken.model', 'chat_template.jinja',
  'config.json.*', '*.hparams', '*.params', '*.hyperparams', '*.wandb', '*.mlflow', '*.tensorboard',
];

export const MODEL_PATTERNS: readonly string[] = [
  // Hugging Face
  '*.safetensors',
  // PyTorch
  '*.bin', '*.bin.*', '*.pt', '*.pth', '*.mar', '*.pte', '*.pt2', '*.ptl',
  // TensorFlow
  '*.tflite', '*.h5', '*.hdf', '*.hdf5', '*.pb', '*.meta', '*.data-*', '*.index',
  // GGML
  '*.gguf', '*.gguf.*', '*.ggml', '*.ggmf', '*.ggjt', '*.q4_0', '*.q4_1', '*.q5_0', '*.q5_1', '*.q8_0', '*.f16', '*.f32',
  // checkpoints
  '*.ckpt', '*.checkpoint', '*.dist_ckpt', 'tensor[0-9]*_[0-9]*',
  // generic
  '*.tensor', '*.weights', '*.state', '*.embedding', '*.vocab',
  // other frameworks
  '*.ot', '*.engine', '*.trt', '*.onnx', '*.onnx_data*', '*.msgpack', '*.model', '*.pkl', '*.pickle', '*.keras',
  '*.joblib', '*.npy', '*.npz', '*.nc', '*.mlmodel', '*.coreml', '*.mil', '*.mleap', '*.surml', '*.llamafile',
  '*.llamafile.*', '*.caffemodel', '*.prototxt', '*.dlc', '*.circle', '*.nb',
  // data-like weights (ModelScope LFS patterns, #460)
  '*.arrow', '*.parquet', '*.ftz', '*.ark', '*.db',
];

export const CODE_PATTERNS: readonly string[] = [
  // sources
  '*.py', '*.ipynb', '*.sh', '*.patch', '*.c', '*.h', '*.hxx', '*.cpp', '*.cc', '*.cxx', '*.c++', '*.hpp', '*.hh',
  '*.h++', '*.java', '*.js', '*.mjs', '*.cjs', '*.jsx', '*.ts', '*.tsx', '*.go', '*.rs', '*.swift', '*.rb', '*.php',
  '*.scala', '*.kt', '*.kts', '*.r', '*.R', '*.m', '*.mm', '*.f', '*.f90', '*.f95', '*.f03', '*.f08', '*.jl', '*.lua',
  '*.pl', '*.pm', '*.cs', '*.vb', '*.dart', '*.groovy', '*.elm', '*.erl', '*.hrl', '*.ex', '*.exs', '*.hs', '*.lhs',
  '*.clj', '*.cljs', '*.cljc', '*.cl', '*.lisp', '*.lsp', '*.scm', '*.ss', '*.rkt', '*.sql', '*.psql', '*.mysql',
  '*.sqlite', '*.zig', '*.cu', '*.cuh',
  // shells and scripts
  '*.bash', '*.zsh', '*.fish', '*.csh', '*.tcsh', '*.ksh', '*.ps1', '*.psm1', '*.psd1', '*.bat', '*.cmd', '*.vbs',
  '*.wsf', '*.applescript', '*.scpt', '*.awk', '*.sed', '*.expect',
  // build and project files
  '*.env', '*.env.*', '.env*', 'Makefile*', '*.dockerfile', 'Dockerfile*', '*.mk', '*.cmake', 'CMakeLists.txt',
  '*.gradle', '*.gradle.kts', 'build.gradle*', 'settings.gradle*', '*.sbt', '*.mill', '*.bazel', '*.bzl', 'BUILD*',
  'WORKSPACE*', '*.buck', 'BUCK*', '*.ninja', '*.gyp', '*.gypi', '*.waf', 'wscript*', 'package.json',
  'package-lock.json', 'yarn.lock', 'pnpm-lock.yaml', 'requirements*.txt', 'Pipfile*', 'pyproject.toml', 'setup.cfg',
  'tox.ini', 'poetry.lock', 'Cargo.toml', 'Cargo.lock', 'go.mod', 'go.sum', 'composer.json', 'composer.lock',
  'Gemfile*', '*.gemspec', 'mix.exs', 'mix.lock', 'rebar.config', 'rebar.lock',
  // libraries
  '*.so', '*.dll', '*.dylib', '*.lib', '*.a',
];

export const DOC_PATTERNS: readonly string[] = [
  '*.txt', '*.md', '*.pdf', 'LICENSE*', 'README*', 'SETUP*', '*requirements*', '*.log', '*.tfevents*',
  // office
  '*.doc', '*.docx', '*.docm', '*.dot', '*.dotx', '*.dotm', '*.rtf', '*.odt', '*.ott', '*.fodt', '*.pages', '*.wpd',
  '*.xls', '*.xlsx', '*.xlsm', '*.xlsb', '*.xlt', '*.xltx', '*.xltm', '*.ods', '*.ots', '*.fods', '*.numbers', '*.csv',
  '*.ppt', '*.pptx', '*.pptm', '*.pps', '*.ppsx', '*.ppsm', '*.pot', '*.potx', '*.potm', '*.odp', '*.otp', '*.fodp',
  '*.key',
  // eBooks
  '*.epub', '*.mobi', '*.azw', '*.azw3', '*.fb2', '*.fb3', '*.lit', '*.pdb', '*.djvu', '*.djv',
  // web and markup
  '*.html', '*.htm', '*.xhtml', '*.mhtml', '*.mht', '*.xml', '*.xsl', '*.xslt',
  // technical documentation
  '*.tex', '*.latex', '*.ltx', '*.bib', '*.rst', '*.asciidoc', '*.adoc', '*.textile', '*.wiki', '*.mediawiki', '*.org',
  '*.texi', '*.texinfo', '*.info', '*.man', '*.chm', '*.hlp', '*.xps',
  // images
  '*.jpg', '*.jpeg', '*.png', '*.gif', '*.bmp', '*.tiff', '*.ico', '*.webp', '*.heic', '*.heif', '*.hevc', '*.svg',
  // videos
  '*.mp4', '*.mov', '*.avi', '*.mkv', '*.webm', '*.m4v', '*.flv', '*.wmv', '*.mpg', '*.mpeg',
];

/** Base names never generated (modctl skipPatterns); a skipped directory is not descended into. */
export const SKIP_PATTERNS: readonly string[] = ['.*', 'modelfile', '__pycache__', '*.pyc', '*.pyo', '*.pyd'];

/** The lists in match order. */
export const CLASSIFY_ORDER: ReadonlyArray<readonly [GeneratedKind, readonly string[]]> = [
  ['config', CONFIG_PATTERNS],
  ['model', MODEL_PATTERNS],
  ['code', CODE_PATTERNS],
  ['doc', DOC_PATTERNS],
];

/** Unrecognised files larger than this (bytes, 128 MB SI: modctl's 128 * humanize.MByte) are weights. */
export const WEIGHT_SIZE_THRESHOLD = 128_000_000;

const compiled = new Map<string, RegExp | null>();

/**
 * Compile a Go `path.Match` pattern to a RegExp: `*` any run of non-`/` characters, `?` one non-`/` character,
 * `[…]` / `[^…]` classes with ranges, `\` escapes the next character. A malformed pattern compiles to null and
 * matches nothing (Go returns ErrBadPattern).
 */
export function compileGoPattern(pattern: string): RegExp | null {
  const cached = compiled.get(pattern);
  if (cached !== undefined) return cached;
  const chars = Array.from(pattern);
  // With the `u` flag only syntax characters may be escaped: `-` only inside a class.
  const esc = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  const escIn = (c: string) => c.replace(/[\\^[\]-]/g, '\\$&');
  let re = '';
  let ok = true;
  for (let i = 0; i < chars.length && ok; i++) {
    const c = chars[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      if (i + 1 >= chars.length) ok = false;
      else re += esc(chars[++i]);
    } else if (c === '[') {
      // Go: `[` [`^`] ranges `]`; a range is lo or lo-hi; `-` or `]` where a character is due is a bad pattern.
      let j = i + 1;
      let cls = '';
      if (chars[j] === '^') {
        cls = '^';
        j++;
      }
      const getEsc = (): string | null => {
        let ch = chars[j];
        if (ch === undefined || ch === '-' || ch === ']') return null;
        if (ch === '\\') {
          ch = chars[++j];
          if (ch === undefined) return null;
        }
        j++;
        return ch;
      };
      for (let nrange = 0; ; nrange++) {
        if (chars[j] === ']' && nrange > 0) {
          j++;
          break;
        }
        const lo = getEsc();
        let hi = lo;
        if (lo !== null && chars[j] === '-') {
          j++;
          hi = getEsc();
        }
        // An inverted range never matches in Go; JS would reject it, so treat it as a bad pattern (not in our lists).
        if (lo === null || hi === null || hi < lo) {
          ok = false;
          break;
        }
        cls += lo === hi ? escIn(lo) : `${escIn(lo)}-${escIn(hi)}`;
      }
      if (ok) {
        re += `[${cls}]`;
        i = j - 1;
      }
    } else re += esc(c);
  }
  const out = ok ? new RegExp(`^${re}$`, 'u') : null;
  compiled.set(pattern, out);
  return out;
}

/** Go `path.Match(pattern, name)`. */
export function goMatch(pattern: string, name: string): boolean {
  return compileGoPattern(pattern)?.test(name) ?? false;
}

function matchesAny(patterns: readonly string[], lowerBase: string): string | undefined {
  return patterns.find((p) => goMatch(p.toLowerCase(), lowerBase));
}

function baseName(p: string): string {
  const parts = p.split(/[\\/]/).filter((s) => s !== '');
  return parts[parts.length - 1] ?? p;
}

/** The first list (and pattern) matching the base name of `relPath`, or undefined. Case-insensitive. */
export function matchKind(relPath: string): { kind: GeneratedKind; pattern: string } | undefined {
  const lower = baseName(relPath).toLowerCase();
  for (const [kind, patterns] of CLASSIFY_ORDER) {
    const pattern = matchesAny(patterns, lower);
    if (pattern !== undefined) return { kind, pattern };
  }
  return undefined;
}

/** Classify one file: first matching list, else MODEL above WEIGHT_SIZE_THRESHOLD bytes, else CODE. */
export function classifyFile(relPath: string, size: number): GeneratedKind {
  const m = matchKind(relPath);
  if (m) return m.kind;
  return size > WEIGHT_SIZE_THRESHOLD ? 'model' : 'code';
}

/** True when a file or directory with this base name is skipped by the walk (hidden, Modelfile, Python caches). */
export function isSkippedName(name: string): boolean {
  if (name === '.' || name === '..') return false;
  return matchesAny(SKIP_PATTERNS, name.toLowerCase()) !== undefined;
}
