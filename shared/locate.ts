import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';

export interface Position {
  readonly line: number;
  readonly column: number;
}

/**
 * Finds where a key path sits in a YAML (or JSON) text, for error messages. `at: 'value'` points at the
 * value (a wrong value), `at: 'key'` at the key itself (an unknown key). A missing key points at the
 * mapping that lacks it.
 */
export class SourceLocator {
  private readonly doc;
  private readonly lines = new LineCounter();

  constructor(text: string) {
    this.doc = parseDocument(text, { lineCounter: this.lines, keepSourceTokens: false, uniqueKeys: false });
  }

  locate(path: readonly (string | number)[], at: 'value' | 'key' = 'value'): Position | undefined {
    let node: unknown = this.doc.contents;
    let offset = rangeStart(node);
    for (let i = 0; i < path.length; i++) {
      const key = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        // The last of equal keys: the copy JSON.parse keeps, should a text with one get this far.
        const pair = node.items.findLast((p) => isPair(p) && keyText(p.key) === String(key));
        if (!pair) break;
        if (last && at === 'key') {
          offset = rangeStart(pair.key) ?? offset;
          break;
        }
        node = pair.value;
        offset = rangeStart(node) ?? rangeStart(pair.key) ?? offset;
      } else if (isSeq(node) && typeof key === 'number') {
        const item = node.items[key];
        if (item === undefined) break;
        node = item;
        offset = rangeStart(node) ?? offset;
      } else {
        break;
      }
    }
    if (offset === undefined) return undefined;
    const pos = this.lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  }
}

/**
 * The property name a plain mapping key becomes when the document is loaded (the `yaml` library's own rule:
 * null and an empty key are "", any other scalar its value's text, so `1`, `1.0` and `"1"` are one key), or
 * undefined for a key that is not a scalar. Keys are named, located and compared by it, so a message points at
 * the key the loaded value has.
 */
export function keyText(key: unknown): string | undefined {
  if (key === null || key === undefined) return '';
  if (!isScalar(key)) return undefined;
  return key.value === null ? '' : String(key.value);
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/** Line and column of a character offset, for JSON.parse's "at position N". */
export function positionOfOffset(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}
