#!/usr/bin/env node
// Checks that LogQL expressions parse with Grafana's LogQL grammar
// (@grafana/lezer-logql, the grammar Grafana's Loki query editor uses).
//
// Input: a JSON array of query strings, read from stdin or from the files
// named as arguments ("-" stands for stdin). Several files are checked as one
// batch, in order.
//
// Output (stdout): a JSON array with one object per query, in input order:
//   {"query": str, "ok": bool, "errors": [{"from": int, "to": int, "message": str}]}
// "from"/"to" are offsets in Unicode code points into "query" (so that
// Python's query[from:to] is the offending text; to == from marks a place
// where the parser expected more input). "message" names the problem, its
// line and column, and ends with the offending line and a caret marker.
//
// Exit status: 0 when every query parses, 1 when any query fails,
// 2 on usage errors (bad arguments, unreadable file, input that is not a
// non-empty JSON array of strings, grammar not installed: run `npm ci` here),
// 3 on an internal error. Exit statuses 2 and 3 print to stderr only.
//
// The grammar knows nothing of Grafana template variables ($job, ${job},
// $__interval, ...): substitute them with sample values before checking.

import { readFileSync } from 'node:fs';

const USAGE = `usage: check.mjs [FILE.json ...]
Reads a JSON array of LogQL query strings from each FILE ("-" for stdin;
stdin when no FILE is given) and prints a JSON array of results.
Exit status: 0 all queries parse, 1 some query fails, 2 usage error,
3 internal error.`;

class UsageError extends Error {}

function readInputs(args) {
  const sources = args.length === 0 ? ['-'] : args;
  const queries = [];
  for (const source of sources) {
    const label = source === '-' ? 'stdin' : source;
    let text;
    try {
      text = readFileSync(source === '-' ? 0 : source, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${label}: ${err.message}`);
    }
    if (text.trim() === '') {
      throw new UsageError(`${label} is empty; expected a JSON array of query strings`);
    }
    let data;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${label} is not valid JSON: ${err.message}`);
    }
    if (!Array.isArray(data)) {
      throw new UsageError(`${label} must hold a JSON array of query strings`);
    }
    data.forEach((item, index) => {
      if (typeof item !== 'string') {
        throw new UsageError(
          `${label}: item ${index} is ${item === null ? 'null' : typeof item}, not a string`,
        );
      }
    });
    queries.push(...data);
  }
  if (queries.length === 0) {
    throw new UsageError('no queries to check (the input array is empty)');
  }
  return queries;
}

// lezer reports UTF-16 offsets; consumers (Python) index by code point.
function codePointOffsets(text) {
  const map = new Array(text.length + 1);
  let cp = 0;
  for (let i = 0; i < text.length; cp += 1) {
    const code = text.codePointAt(i);
    const width = code > 0xffff ? 2 : 1;
    for (let k = 0; k < width; k += 1) map[i + k] = cp;
    i += width;
  }
  map[text.length] = cp;
  return map;
}

function quote(text, limit = 40) {
  const shown = text.length > limit ? `${text.slice(0, limit)}...` : text;
  return JSON.stringify(shown);
}

const VARIABLE_HINT =
  'Grafana template variables must be replaced with sample values before checking';

// Returns [problem, hint]; offsets here are lezer's UTF-16 offsets.
function describe(query, from, to, parentName) {
  const where = parentName ? ` in ${parentName}` : '';
  if (from === to) {
    const rest = query.slice(from).trimStart();
    if (rest === '') return [`query ends unexpectedly${where}`, null];
    const next = rest.split(/\s/, 1)[0];
    if (next.startsWith('$')) return [`unexpected ${quote(next)}${where}`, VARIABLE_HINT];
    return [`missing input before ${quote(next)}${where}`, null];
  }
  const text = query.slice(from, to);
  return [`unexpected ${quote(text)}${where}`, text.startsWith('$') ? VARIABLE_HINT : null];
}

// Line/column (1-based, code points) and a caret snippet of the line holding
// `from`; `from`/`to` are code-point offsets into `chars`.
function locate(chars, from, to) {
  let lineStart = 0;
  let line = 1;
  for (let i = 0; i < from; i += 1) {
    if (chars[i] === '\n') {
      line += 1;
      lineStart = i + 1;
    }
  }
  let lineEnd = chars.indexOf('\n', lineStart);
  if (lineEnd === -1) lineEnd = chars.length;
  const column = from - lineStart + 1;
  const lineText = chars.slice(lineStart, lineEnd).join('');
  const width = Math.max(1, Math.min(to, lineEnd) - from);
  const caret = `${' '.repeat(from - lineStart)}${'^'.repeat(width)}`;
  return { line, column, snippet: `  ${lineText}\n  ${caret}` };
}

function checkQuery(parser, query) {
  const chars = Array.from(query);
  if (query.trim() === '') {
    return {
      query,
      ok: false,
      errors: [{ from: 0, to: chars.length, message: 'empty query' }],
    };
  }
  const offsets = codePointOffsets(query);
  const errors = [];
  parser.parse(query).iterate({
    enter(node) {
      if (!node.type.isError) return;
      const parentName = node.node.parent ? node.node.parent.name : null;
      const from = offsets[node.from];
      const to = offsets[node.to];
      const { line, column, snippet } = locate(chars, from, to);
      const [problem, hint] = describe(query, node.from, node.to, parentName);
      const note = hint ? ` (${hint})` : '';
      const message = `${problem} at line ${line}, column ${column}${note}\n${snippet}`;
      errors.push({ from, to, message });
    },
  });
  return { query, ok: errors.length === 0, errors };
}

async function loadParser() {
  try {
    return (await import('@grafana/lezer-logql')).parser;
  } catch (err) {
    if (err.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    const here = new URL('.', import.meta.url).pathname;
    throw new UsageError(
      `the LogQL grammar is not installed; run \`npm ci --no-audit --no-fund\` in ${here}`,
    );
  }
}

async function main(argv) {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const unknown = argv.find((arg) => arg.startsWith('-') && arg !== '-');
  if (unknown) throw new UsageError(`unknown option ${unknown}\n${USAGE}`);
  const queries = readInputs(argv);
  const parser = await loadParser();
  const results = queries.map((query) => checkQuery(parser, query));
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  return results.every((result) => result.ok) ? 0 : 1;
}

try {
  // exitCode rather than process.exit(): lets a piped stdout drain fully.
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  const usage = err instanceof UsageError;
  process.stderr.write(`logql-check: ${usage ? err.message : `internal error: ${err.stack}`}\n`);
  process.exitCode = usage ? 2 : 3;
}
