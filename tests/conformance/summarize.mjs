#!/usr/bin/env node
// Summarises one run of the conformance suite's server scenarios (used by run.sh).
//
// usage: summarize.mjs SUITE_OUTPUT_TXT RESULTS_DIR [EXPECTED_FAILURES_YML]
//
// Reads the suite's printed SUMMARY block (one line per scenario run) and the
// RESULTS_DIR/server-<scenario>-<timestamp>/checks.json files it wrote (-o), then prints:
//   - one line per scenario: PASS / WARN / FAIL / XFAIL (expected failure) / STALE
//     (listed as expected to fail but passed), with the failing or warning checks and
//     their messages under each scenario that is not clean;
//   - a checks line and, last, `conformance: P passed, F failed[, X skipped]`
//     (skipped = expected failures listed in EXPECTED_FAILURES_YML).
// Verdict (exit 1 on failure) follows the suite's own rules:
//   - with a baseline file: a scenario "fails" when any check is FAILURE *or WARNING*;
//     failing and not listed -> unexpected; listed and passing -> stale; either fails the run.
//   - without one: the run fails when any check is FAILURE (warnings are reported only).
// Also writes RESULTS_DIR/../summary.json.
import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [outputTxt, resultsDir, baselineFile] = process.argv.slice(2);
if (!outputTxt || !resultsDir) {
    console.error('usage: summarize.mjs SUITE_OUTPUT_TXT RESULTS_DIR [EXPECTED_FAILURES_YML]');
    process.exit(2);
}

function loadBaseline(file) {
    if (!file) return null;
    const depsDir = process.env.MCPGATE_CONFORMANCE_DIR;
    const req = createRequire(depsDir ? path.join(depsDir, 'package.json') : import.meta.url);
    const doc = req('yaml').parse(readFileSync(file, 'utf8'));
    if (doc == null) return new Set();
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file}: expected a mapping with a 'server' key`);
    if (doc.server !== undefined && !Array.isArray(doc.server)) throw new Error(`${file}: 'server' must be a list`);
    return new Set((doc.server ?? []).map(String));
}

// Scenario order and per-scenario counts, from the suite's printed SUMMARY block.
const scenarios = new Map(); // name -> { passed, failed }
const output = existsSync(outputTxt) ? readFileSync(outputTxt, 'utf8') : '';
const summaryAt = output.lastIndexOf('=== SUMMARY ===');
if (summaryAt >= 0) {
    for (const line of output.slice(summaryAt).split('\n')) {
        const m = /^[✓✗] (\S+): (\d+) passed, (\d+) failed\s*$/u.exec(line.trim());
        if (m) scenarios.set(m[1], { passed: Number(m[2]), failed: Number(m[3]) });
    }
}

// Checks, from RESULTS_DIR/server-<scenario>-<ISO timestamp with - for : and .>/checks.json.
const checksByScenario = new Map();
const DIR_RE = /^server-(.+)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)$/;
if (existsSync(resultsDir)) {
    for (const entry of readdirSync(resultsDir).sort()) {
        const m = DIR_RE.exec(entry);
        const file = path.join(resultsDir, entry, 'checks.json');
        if (!m || !existsSync(file)) continue;
        checksByScenario.set(m[1], JSON.parse(readFileSync(file, 'utf8'))); // later timestamp wins
        if (!scenarios.has(m[1])) scenarios.set(m[1], null);
    }
}

let baseline;
try {
    baseline = loadBaseline(baselineFile);
} catch (e) {
    console.error(`summarize: cannot read expected-failures file: ${e.message}`);
    process.exit(2);
}

const rows = [];
const totals = { SUCCESS: 0, FAILURE: 0, WARNING: 0 };
for (const [name, counts] of scenarios) {
    const checks = checksByScenario.get(name) ?? [];
    const failures = checks.filter((c) => c.status === 'FAILURE');
    const warnings = checks.filter((c) => c.status === 'WARNING');
    const successes = checks.filter((c) => c.status === 'SUCCESS');
    const nFail = checks.length ? failures.length : (counts?.failed ?? 1);
    const nOk = checks.length ? successes.length : (counts?.passed ?? 0);
    totals.SUCCESS += nOk;
    totals.FAILURE += nFail;
    totals.WARNING += warnings.length;
    const raw = nFail > 0 ? 'FAIL' : warnings.length > 0 ? 'WARN' : 'PASS';
    const listed = baseline?.has(name) ?? false;
    let status = raw;
    if (baseline) {
        const failing = raw !== 'PASS';
        if (failing && listed) status = 'XFAIL';
        else if (!failing && listed) status = 'STALE';
    }
    const problems = [...failures, ...warnings].map(
        (c) => `${c.status} ${c.id}: ${c.errorMessage ?? c.description ?? ''}`.trim(),
    );
    if (!checks.length && nFail > 0) problems.push('FAILURE (no checks.json: the scenario did not complete)');
    rows.push({ name, status, checks: { passed: nOk, failed: nFail, warnings: warnings.length }, problems });
}

const count = (s) => rows.filter((r) => r.status === s).length;
let passed, failed, skipped, ok;
if (baseline) {
    passed = count('PASS');
    failed = count('FAIL') + count('WARN') + count('STALE');
    skipped = count('XFAIL');
    ok = failed === 0;
} else {
    passed = count('PASS') + count('WARN');
    failed = count('FAIL');
    skipped = 0;
    ok = failed === 0;
}
if (rows.length === 0) ok = false;

const width = Math.max(10, ...rows.map((r) => r.name.length));
console.log('');
console.log('=== mcpgate conformance summary ===');
for (const r of rows) {
    const c = r.checks;
    console.log(
        `${r.status.padEnd(5)} ${r.name.padEnd(width)}  checks: ${c.passed} passed, ${c.failed} failed, ${c.warnings} warnings`,
    );
    if (r.status !== 'PASS') for (const p of r.problems) console.log(`        - ${p}`);
    if (r.status === 'STALE') console.log('        - listed in the expected-failures file but passed: remove the entry');
}
if (rows.length === 0) console.log('no scenario results found (did the suite start? see the suite output)');
console.log(
    `scenarios: ${rows.length} run, ${count('PASS')} clean, ${count('WARN')} with warnings only, ` +
        `${count('FAIL')} failing` +
        (baseline ? `, ${count('XFAIL')} expected failures, ${count('STALE')} stale baseline entries` : ''),
);
console.log(`checks: ${totals.SUCCESS} succeeded, ${totals.FAILURE} failed, ${totals.WARNING} warnings`);

writeFileSync(
    path.join(path.dirname(path.resolve(resultsDir)), 'summary.json'),
    JSON.stringify({ ok, baseline: baselineFile ?? null, passed, failed, skipped, checks: totals, scenarios: rows }, null, 2),
);

console.log(`conformance: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(ok ? 0 : 1);
