#!/usr/bin/env node
// Summarises one run of the conformance suite's server scenarios (used by run.sh).
//
// usage: summarize.mjs SUITE_OUTPUT_TXT RESULTS_DIR [EXPECTED_FAILURES_YML] [--requirements REQUIREMENTS_YML]
//
// Reads the suite's printed SUMMARY block (one line per scenario run) and the
// RESULTS_DIR/server-<scenario>-<timestamp>/checks.json files it wrote (-o), then prints:
//   - one line per scenario: PASS / WARN / FAIL / XFAIL (expected failure) / STALE
//     (listed as expected to fail but passed), with the failing or warning checks and
//     their messages under each scenario that is not clean;
//   - a checks line and, last, `conformance: P passed, F failed[, X skipped][, N not scored]`
//     (skipped = expected failures listed in EXPECTED_FAILURES_YML).
// Verdict (exit 1 on failure) follows the suite's own rules:
//   - with a baseline file: a scenario "fails" when any check is FAILURE *or WARNING*;
//     failing and not listed -> unexpected; listed and passing -> stale; either fails the run.
//     Entries are `scenario` (the whole scenario) or, with the 0.2 alpha suite,
//     `scenario:check-id` (one check: its FAILURE/WARNING is expected; the other checks of
//     the scenario must pass; the entry is stale once that check succeeds).
//   - without one: the run fails when any check is FAILURE (warnings are reported only).
// With --requirements (the suite's requirements/<revision>.yaml, for a `--requirements`
// run of the 0.2 alpha): the scenarios it lists under `not_scored` (leg server) are shown
// as `n/s <status>` and, like the suite does, left out of the verdict and the counts.
// Also writes RESULTS_DIR/../summary.json.
import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const positional = [];
let requirementsFile;
{
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--requirements') requirementsFile = argv[++i];
        else if (argv[i].startsWith('--requirements=')) requirementsFile = argv[i].slice('--requirements='.length);
        else positional.push(argv[i]);
    }
}
const [outputTxt, resultsDir, baselineFile] = positional;
if (!outputTxt || !resultsDir || (requirementsFile !== undefined && !requirementsFile)) {
    console.error('usage: summarize.mjs SUITE_OUTPUT_TXT RESULTS_DIR [EXPECTED_FAILURES_YML] [--requirements REQUIREMENTS_YML]');
    process.exit(2);
}

function yamlParser() {
    const depsDir = process.env.MCPGATE_CONFORMANCE_DIR;
    const req = createRequire(depsDir ? path.join(depsDir, 'package.json') : import.meta.url);
    return req('yaml');
}

// Baseline entries as the suite reads them: `scenario` or `scenario:check-id`.
function loadBaseline(file) {
    if (!file) return null;
    const doc = yamlParser().parse(readFileSync(file, 'utf8'));
    const baseline = { scenarios: new Set(), checks: new Map() }; // checks: scenario -> Set(check id)
    if (doc == null) return baseline;
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file}: expected a mapping with a 'server' key`);
    if (doc.server !== undefined && !Array.isArray(doc.server)) throw new Error(`${file}: 'server' must be a list`);
    for (const entry of doc.server ?? []) {
        if (entry === null || typeof entry === 'object') {
            throw new Error(`${file}: entry ${JSON.stringify(entry)} is not 'scenario' or 'scenario:check-id' (no space after the colon)`);
        }
        const s = String(entry);
        const colon = s.indexOf(':');
        if (colon === -1) {
            baseline.scenarios.add(s);
            continue;
        }
        const [scenario, checkId] = [s.slice(0, colon), s.slice(colon + 1)];
        if (!scenario || !checkId) throw new Error(`${file}: entry '${s}' needs both sides of the colon`);
        if (!baseline.checks.has(scenario)) baseline.checks.set(scenario, new Set());
        baseline.checks.get(scenario).add(checkId);
    }
    for (const scenario of baseline.checks.keys()) {
        if (baseline.scenarios.has(scenario)) {
            throw new Error(`${file}: '${scenario}' is listed as a whole scenario and with single checks: keep one`);
        }
    }
    return baseline;
}

// The suite's requirement set: which server scenarios it runs but does not score.
function loadNotScored(file) {
    if (!file) return new Map();
    const doc = yamlParser().parse(readFileSync(file, 'utf8')) ?? {};
    const notScored = new Map(); // scenario -> reason
    for (const e of doc.not_scored ?? []) {
        if (e && e.leg === 'server' && typeof e.scenario === 'string') notScored.set(e.scenario, e.reason ?? 'not scored');
    }
    return notScored;
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
let notScored;
try {
    baseline = loadBaseline(baselineFile);
    notScored = loadNotScored(requirementsFile);
} catch (e) {
    console.error(`summarize: cannot read ${baseline === undefined ? 'expected-failures' : 'requirements'} file: ${e.message}`);
    process.exit(2);
}

const failing = (c) => c.status === 'FAILURE' || c.status === 'WARNING';
const SEVERITY = { FAILURE: 3, WARNING: 2, SUCCESS: 1 };
// One check per id, the worst status winning (the suite's rule for per-check baselines);
// INFO checks are kept as they are.
function collapse(checks) {
    const best = new Map();
    checks.forEach((c, i) => {
        if (c.status === 'INFO') return;
        const prev = best.get(c.id);
        if (prev === undefined || (SEVERITY[c.status] ?? 0) >= (SEVERITY[checks[prev].status] ?? 0)) best.set(c.id, i);
    });
    return checks.filter((c, i) => c.status === 'INFO' || best.get(c.id) === i);
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
    const scored = !notScored.has(name);
    if (scored) {
        totals.SUCCESS += nOk;
        totals.FAILURE += nFail;
        totals.WARNING += warnings.length;
    }
    const raw = nFail > 0 ? 'FAIL' : warnings.length > 0 ? 'WARN' : 'PASS';
    let status = raw;
    const notes = [];
    if (baseline && scored) {
        const perCheck = baseline.checks.get(name);
        if (baseline.scenarios.has(name)) {
            status = raw !== 'PASS' ? 'XFAIL' : 'STALE';
            if (status === 'STALE') notes.push('listed in the expected-failures file but passed: remove the entry');
        } else if (perCheck) {
            const collapsed = collapse(checks);
            const unexpected = collapsed.filter((c) => failing(c) && !perCheck.has(c.id));
            const expected = collapsed.filter((c) => failing(c) && perCheck.has(c.id));
            const stale = [...perCheck].filter((id) => collapsed.find((c) => c.id === id && c.status !== 'INFO')?.status === 'SUCCESS');
            if (!checks.length && nFail > 0) status = 'FAIL';
            else if (unexpected.length > 0) status = unexpected.some((c) => c.status === 'FAILURE') ? 'FAIL' : 'WARN';
            else if (stale.length > 0) status = 'STALE';
            else if (expected.length > 0) status = 'XFAIL';
            else status = 'PASS';
            for (const id of stale) notes.push(`expected-failures entry '${name}:${id}' passed: remove it`);
            for (const c of expected) notes.push(`(expected) ${c.status} ${c.id}`);
        }
    }
    const problems = [...failures, ...warnings].map(
        (c) => `${c.status} ${c.id}: ${c.errorMessage ?? c.description ?? ''}`.trim(),
    );
    if (!checks.length && nFail > 0) problems.push('FAILURE (no checks.json: the scenario did not complete)');
    rows.push({
        name,
        status,
        scored,
        ...(scored ? {} : { notScoredReason: notScored.get(name) }),
        checks: { passed: nOk, failed: nFail, warnings: warnings.length },
        problems,
        notes,
    });
}

const scoredRows = rows.filter((r) => r.scored);
const count = (s) => scoredRows.filter((r) => r.status === s).length;
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
const notScoredRows = rows.filter((r) => !r.scored);

const width = Math.max(10, ...rows.map((r) => r.name.length));
console.log('');
console.log('=== mcpgate conformance summary ===');
for (const r of rows) {
    const c = r.checks;
    const label = r.scored ? r.status.padEnd(5) : `n/s ${r.status}`.padEnd(8);
    console.log(
        `${label} ${r.name.padEnd(width)}  checks: ${c.passed} passed, ${c.failed} failed, ${c.warnings} warnings` +
            (r.scored ? '' : `  (not scored: ${r.notScoredReason})`),
    );
    if (r.status !== 'PASS') for (const p of r.problems) console.log(`        - ${p}`);
    for (const n of r.notes) console.log(`        - ${n}`);
}
if (rows.length === 0) console.log('no scenario results found (did the suite start? see the suite output)');
console.log(
    `scenarios: ${scoredRows.length} run, ${count('PASS')} clean, ${count('WARN')} with warnings only, ` +
        `${count('FAIL')} failing` +
        (baseline ? `, ${count('XFAIL')} expected failures, ${count('STALE')} stale baseline entries` : '') +
        (notScoredRows.length
            ? `; ${notScoredRows.length} more run but not scored (${notScoredRows.filter((r) => r.status !== 'PASS').length} not clean)`
            : ''),
);
console.log(`checks: ${totals.SUCCESS} succeeded, ${totals.FAILURE} failed, ${totals.WARNING} warnings` +
    (notScoredRows.length ? ' (scored scenarios)' : ''));

writeFileSync(
    path.join(path.dirname(path.resolve(resultsDir)), 'summary.json'),
    JSON.stringify(
        {
            ok,
            baseline: baselineFile ?? null,
            requirements: requirementsFile ?? null,
            passed,
            failed,
            skipped,
            notScored: notScoredRows.length,
            checks: totals,
            scenarios: rows,
        },
        null,
        2,
    ),
);

console.log(
    `conformance: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}` +
        (notScoredRows.length ? `, ${notScoredRows.length} not scored` : ''),
);
process.exit(ok ? 0 : 1);
