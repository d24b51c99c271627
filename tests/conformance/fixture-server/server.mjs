#!/usr/bin/env node
// mcpgate conformance fixture: an MCP backend (legacy era, Streamable HTTP, stateful
// sessions) exposing every tool, resource, resource template and prompt that the server
// scenarios of the official conformance suite (@modelcontextprotocol/conformance) call.
// Run the suite against it directly, or through `mcpgate serve` with this server as the
// only backend (prefix "").
//
// Written for mcpgate on the low-level Server class of the TypeScript SDK
// (@modelcontextprotocol/sdk 1.x, pinned in ../package.json). See ../README.md.
//
// It also serves the tools and the prompt the 2026-07-28 (modern, stateless) scenarios call
// (test_input_required_result_*, test_missing_capability, test_logging_tool,
// test_streaming_elicitation, test_trigger_*_change, test_header_param), still as a legacy
// server: the input ones ask with server->client requests, which a bridging gateway turns
// into MRTR `input_required` results. Each such request carries the inputRequests key to
// use in params._meta["mcpgate/inputKey"]. See ../MODERN-SCENARIOS.md.
//
// Usage: node server.mjs [--port N] [--path /mcp] [--no-event-store] [--no-host-check] [--verbose]
//   --port / env PORT: TCP port on 127.0.0.1 (0 = pick a free one; the chosen URL is printed).
//   --no-event-store:  no resumability (no SSE event ids, no priming events, no replay).
//   --no-host-check:   accept any Host/Origin (DNS-rebinding protection off).
// It prints one line `mcpgate-conformance-fixture listening on http://127.0.0.1:PORT/mcp`
// on stdout once ready. SIGTERM/SIGINT stop it. Env FIXTURE_MAX_SESSIONS (default 1000): open
// sessions kept; past it the least recently used one is closed. Env FIXTURE_INPUT_TIMEOUT_MS
// (default 60000): how long a tool waits for the client's answer to one of its requests.
//
// The SDK is loaded from the directory tests/conformance/install.sh fills:
// $MCPGATE_CONFORMANCE_DIR, else ${MCPGATE_TEST_CACHE:-~/.cache/mcpgate-test}/conformance.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { deflateSync } from 'node:zlib';

const FIXTURE_NAME = 'mcpgate-conformance-fixture';
const FIXTURE_VERSION = '0.1.0';
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const MAX_SESSIONS = Number(process.env.FIXTURE_MAX_SESSIONS) > 0 ? Number(process.env.FIXTURE_MAX_SESSIONS) : 1000;
const SESSION_IDLE_MS = 30 * 60 * 1000;
const EVENTS_PER_SESSION = 2000;
const SSE_RETRY_MS = 500;

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------
function parseArgs(argv) {
    const opts = {
        port: process.env.PORT !== undefined ? process.env.PORT : '3001',
        path: '/mcp',
        eventStore: true,
        hostCheck: true,
        verbose: process.env.FIXTURE_VERBOSE === '1',
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--port') opts.port = value();
        else if (a.startsWith('--port=')) opts.port = a.slice(7);
        else if (a === '--path') opts.path = value();
        else if (a.startsWith('--path=')) opts.path = a.slice(7);
        else if (a === '--no-event-store') opts.eventStore = false;
        else if (a === '--no-host-check') opts.hostCheck = false;
        else if (a === '--verbose') opts.verbose = true;
        else if (a === '-h' || a === '--help') usage();
        else usage(`unknown argument: ${a}`);
    }
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad port: ${opts.port}`);
    opts.port = port;
    if (!opts.path.startsWith('/')) usage(`--path must start with /`);
    return opts;
}

function usage(error) {
    const text =
        'usage: server.mjs [--port N] [--path /mcp] [--no-event-store] [--no-host-check] [--verbose]\n' +
        '  env PORT is used when --port is absent (default 3001; 0 picks a free port)';
    if (error) {
        console.error(`${FIXTURE_NAME}: ${error}\n${text}`);
        process.exit(2);
    }
    console.log(text);
    process.exit(0);
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------------------------------
// SDK loading (from the install directory, or from a node_modules next to this file)
// ---------------------------------------------------------------------------------------
// The SDK's exports map hides its package.json: find it above a resolved module file.
function sdkVersionFrom(modulePath) {
    for (let dir = path.dirname(modulePath); dir !== path.dirname(dir); dir = path.dirname(dir)) {
        try {
            const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
            if (pkg.name === '@modelcontextprotocol/sdk') return pkg.version;
        } catch {
            // no package.json here (or a partial one from the dual build): keep walking up
        }
    }
    return 'unknown';
}

function loadSdk() {
    const depsDir =
        process.env.MCPGATE_CONFORMANCE_DIR ||
        path.join(process.env.MCPGATE_TEST_CACHE || path.join(os.homedir(), '.cache', 'mcpgate-test'), 'conformance');
    const candidates = [createRequire(path.join(depsDir, 'package.json')), createRequire(import.meta.url)];
    let lastError;
    for (const req of candidates) {
        try {
            return {
                ...req('@modelcontextprotocol/sdk/types.js'),
                Server: req('@modelcontextprotocol/sdk/server/index.js').Server,
                StreamableHTTPServerTransport: req('@modelcontextprotocol/sdk/server/streamableHttp.js')
                    .StreamableHTTPServerTransport,
                sdkVersion: sdkVersionFrom(req.resolve('@modelcontextprotocol/sdk/types.js')),
            };
        } catch (e) {
            lastError = e;
        }
    }
    console.error(
        `${FIXTURE_NAME}: cannot load @modelcontextprotocol/sdk from ${depsDir} ` +
            `(run tests/conformance/install.sh): ${lastError && lastError.message}`,
    );
    process.exit(2);
}

const sdk = loadSdk();
const { Server, StreamableHTTPServerTransport, McpError, ErrorCode } = sdk;

// ---------------------------------------------------------------------------------------
// Small binary assets, generated here: a 1x1 red PNG and a short 440 Hz WAV tone.
// ---------------------------------------------------------------------------------------
const CRC_TABLE = (() => {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        table[n] = c >>> 0;
    }
    return table;
})();

function crc32(buf) {
    let c = 0xffffffff;
    for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typeAndData));
    return Buffer.concat([len, typeAndData, crc]);
}

function makePng(width, height, [r, g, b]) {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type: truecolour RGB
    // compression, filter, interlace: 0
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then RGB triples
    for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3);
    const raw = Buffer.concat(Array.from({ length: height }, () => row));
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        pngChunk('IHDR', ihdr),
        pngChunk('IDAT', deflateSync(raw)),
        pngChunk('IEND', Buffer.alloc(0)),
    ]);
}

function makeWav({ sampleRate = 8000, seconds = 0.1, freq = 440 } = {}) {
    const samples = Math.round(sampleRate * seconds);
    const data = Buffer.alloc(samples * 2);
    for (let i = 0; i < samples; i++) {
        data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * freq * i) / sampleRate)), i * 2);
    }
    const header = Buffer.alloc(44);
    header.write('RIFF', 0, 'ascii');
    header.writeUInt32LE(36 + data.length, 4);
    header.write('WAVE', 8, 'ascii');
    header.write('fmt ', 12, 'ascii');
    header.writeUInt32LE(16, 16); // fmt chunk size
    header.writeUInt16LE(1, 20); // PCM
    header.writeUInt16LE(1, 22); // mono
    header.writeUInt32LE(sampleRate, 24);
    header.writeUInt32LE(sampleRate * 2, 28); // byte rate
    header.writeUInt16LE(2, 32); // block align
    header.writeUInt16LE(16, 34); // bits per sample
    header.write('data', 36, 'ascii');
    header.writeUInt32LE(data.length, 40);
    return Buffer.concat([header, data]);
}

const RED_PIXEL_PNG = makePng(1, 1, [255, 0, 0]).toString('base64');
const TONE_WAV = makeWav().toString('base64');

// ---------------------------------------------------------------------------------------
// Catalogue: tools
// ---------------------------------------------------------------------------------------
const EMPTY_INPUT = { type: 'object', properties: {}, additionalProperties: false };
const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const text = (t) => ({ type: 'text', text: t });

// Added to / removed from tools/list by test_trigger_tool_change.
const DYNAMIC_TOOL = {
    name: 'test_dynamic_tool',
    description: 'Present only while test_trigger_tool_change has toggled it on.',
    inputSchema: EMPTY_INPUT,
    run: async () => ({ content: [text('Dynamic tool called')] }),
};

const TOOLS = [
    {
        name: 'test_simple_text',
        description: 'Returns one fixed text block.',
        inputSchema: EMPTY_INPUT,
        run: async () => ({ content: [text('This is a simple text response for testing.')] }),
    },
    {
        name: 'test_image_content',
        description: 'Returns a 1x1 red PNG image.',
        inputSchema: EMPTY_INPUT,
        run: async () => ({ content: [{ type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' }] }),
    },
    {
        name: 'test_audio_content',
        description: 'Returns a short WAV tone.',
        inputSchema: EMPTY_INPUT,
        run: async () => ({ content: [{ type: 'audio', data: TONE_WAV, mimeType: 'audio/wav' }] }),
    },
    {
        name: 'test_embedded_resource',
        description: 'Returns an embedded text resource.',
        inputSchema: EMPTY_INPUT,
        run: async () => ({
            content: [
                {
                    type: 'resource',
                    resource: {
                        uri: 'test://embedded-resource',
                        mimeType: 'text/plain',
                        text: 'This is an embedded resource content.',
                    },
                },
            ],
        }),
    },
    {
        name: 'test_multiple_content_types',
        description: 'Returns text, image and embedded resource content together.',
        inputSchema: EMPTY_INPUT,
        run: async () => ({
            content: [
                text('Multiple content types test:'),
                { type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' },
                {
                    type: 'resource',
                    resource: {
                        uri: 'test://mixed-content-resource',
                        mimeType: 'application/json',
                        text: JSON.stringify({ test: 'data', value: 123 }),
                    },
                },
            ],
        }),
    },
    {
        name: 'test_tool_with_logging',
        description: 'Sends three info log notifications (50 ms apart) while it runs.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            await ctx.log('info', 'Tool execution started');
            await sleep(50);
            await ctx.log('info', 'Tool processing data');
            await sleep(50);
            await ctx.log('info', 'Tool execution completed');
            return { content: [text('Tool with logging executed successfully')] };
        },
    },
    {
        name: 'test_tool_with_progress',
        description: 'Reports progress 0, 50, 100 of 100 (50 ms apart) when given a progress token.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            for (const [i, progress] of [0, 50, 100].entries()) {
                if (i > 0) await sleep(50);
                await ctx.progress(progress, 100, `step ${i + 1} of 3`);
            }
            return {
                content: [
                    text(
                        ctx.progressToken === undefined
                            ? 'Tool with progress executed (no progress token given)'
                            : 'Tool with progress executed successfully',
                    ),
                ],
            };
        },
    },
    {
        name: 'test_error_handling',
        description: 'Always fails with a tool execution error (isError: true).',
        inputSchema: EMPTY_INPUT,
        run: async () => ({
            isError: true,
            content: [text('This tool intentionally returns an error for testing')],
        }),
    },
    {
        name: 'test_sampling',
        description: 'Asks the client for an LLM completion of the prompt (sampling/createMessage).',
        inputSchema: {
            type: 'object',
            properties: { prompt: { type: 'string', description: 'The prompt to send to the LLM' } },
            required: ['prompt'],
        },
        run: async (args, ctx) => {
            if (typeof args.prompt !== 'string') return toolError('argument "prompt" (string) is required');
            if (!ctx.clientCapabilities?.sampling) return toolError('client does not support sampling');
            const result = await ctx.request(
                {
                    method: 'sampling/createMessage',
                    params: {
                        messages: [{ role: 'user', content: text(args.prompt) }],
                        maxTokens: 100,
                    },
                },
                sdk.CreateMessageResultSchema,
            );
            const reply = Array.isArray(result.content) ? result.content : [result.content];
            const replyText = reply.map((c) => (c && c.type === 'text' ? c.text : JSON.stringify(c))).join('\n');
            return { content: [text(`LLM response: ${replyText}`)] };
        },
    },
    {
        name: 'test_elicitation',
        description: 'Asks the user for a username and email (elicitation/create).',
        inputSchema: {
            type: 'object',
            properties: { message: { type: 'string', description: 'The message to show the user' } },
            required: ['message'],
        },
        run: async (args, ctx) => {
            if (typeof args.message !== 'string') return toolError('argument "message" (string) is required');
            const result = await ctx.elicit({
                message: args.message,
                requestedSchema: {
                    type: 'object',
                    properties: {
                        username: { type: 'string', description: "User's response" },
                        email: { type: 'string', description: "User's email address" },
                    },
                    required: ['username', 'email'],
                },
            });
            if (result.isError) return result;
            return { content: [text(`User response: ${describeElicitation(result)}`)] };
        },
    },
    {
        name: 'test_elicitation_sep1034_defaults',
        description: 'Elicitation whose schema gives a default for every primitive type (SEP-1034).',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const result = await ctx.elicit({
                message: 'Please review your profile (every field has a default)',
                requestedSchema: {
                    type: 'object',
                    properties: {
                        name: { type: 'string', description: 'User name', default: 'John Doe' },
                        age: { type: 'integer', description: 'User age', default: 30 },
                        score: { type: 'number', description: 'User score', default: 95.5 },
                        status: {
                            type: 'string',
                            description: 'User status',
                            enum: ['active', 'inactive', 'pending'],
                            default: 'active',
                        },
                        verified: { type: 'boolean', description: 'Verification status', default: true },
                    },
                    required: [],
                },
            });
            if (result.isError) return result;
            return { content: [text(`Elicitation completed: ${describeElicitation(result)}`)] };
        },
    },
    {
        name: 'test_elicitation_sep1330_enums',
        description: 'Elicitation with the five enum schema shapes of SEP-1330.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const result = await ctx.elicit({
                message: 'Please pick options (enum schema variants)',
                requestedSchema: {
                    type: 'object',
                    properties: {
                        untitledSingle: {
                            type: 'string',
                            description: 'Untitled single-select',
                            enum: ['option1', 'option2', 'option3'],
                        },
                        titledSingle: {
                            type: 'string',
                            description: 'Titled single-select',
                            oneOf: [
                                { const: 'value1', title: 'First Option' },
                                { const: 'value2', title: 'Second Option' },
                                { const: 'value3', title: 'Third Option' },
                            ],
                        },
                        legacyEnum: {
                            type: 'string',
                            description: 'Legacy titled single-select (enumNames, deprecated)',
                            enum: ['opt1', 'opt2', 'opt3'],
                            enumNames: ['Option One', 'Option Two', 'Option Three'],
                        },
                        untitledMulti: {
                            type: 'array',
                            description: 'Untitled multi-select',
                            items: { type: 'string', enum: ['option1', 'option2', 'option3'] },
                        },
                        titledMulti: {
                            type: 'array',
                            description: 'Titled multi-select',
                            items: {
                                anyOf: [
                                    { const: 'value1', title: 'First Choice' },
                                    { const: 'value2', title: 'Second Choice' },
                                    { const: 'value3', title: 'Third Choice' },
                                ],
                            },
                        },
                    },
                    required: [],
                },
            });
            if (result.isError) return result;
            return { content: [text(`Elicitation completed: ${describeElicitation(result)}`)] };
        },
    },
    {
        name: 'json_schema_2020_12_tool',
        description:
            'Tool with JSON Schema 2020-12 features ($schema, $defs with $anchor, $ref, additionalProperties, ' +
            'allOf/anyOf, if/then/else).',
        inputSchema: {
            $schema: 'https://json-schema.org/draft/2020-12/schema',
            type: 'object',
            $defs: {
                address: {
                    $anchor: 'addressDef',
                    type: 'object',
                    properties: { street: { type: 'string' }, city: { type: 'string' } },
                },
            },
            properties: {
                name: { type: 'string' },
                address: { $ref: '#/$defs/address' },
                contactMethod: { type: 'string', enum: ['phone', 'email'] },
                phone: { type: 'string' },
                email: { type: 'string' },
            },
            // SEP-2106 vocabulary (checked by the 0.2 alpha's json-schema-2020-12 scenario).
            allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
            if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
            then: { required: ['phone'] },
            else: { required: ['email'] },
            additionalProperties: false,
        },
        run: async (args) => ({ content: [text(`Received: ${JSON.stringify(args)}`)] }),
    },
    {
        name: 'test_reconnection',
        description:
            'Closes its SSE response stream mid-call (when the transport allows it), then answers; ' +
            'the client must reconnect with Last-Event-ID to get the result (SEP-1699).',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            if (ctx.closeSSEStream) {
                await sleep(50);
                ctx.closeSSEStream();
                await sleep(200);
                return { content: [text('Reconnection test completed successfully')] };
            }
            await sleep(50);
            return {
                content: [text('Reconnection test completed (stream not closed: resumability unavailable for this request)')],
            };
        },
    },

    // --- Tools the 2026-07-28 (modern, stateless) scenarios call ------------------------
    // This fixture stays a legacy-era server: these tools ask for input the legacy way, with
    // server->client requests (elicitation/create, sampling/createMessage, roots/list) on the
    // tools/call response stream. A bridging gateway turns them into an MRTR
    // `resultType: "input_required"` result for a modern client and answers them from the
    // client's `inputResponses` on the retry. Each request names the inputRequests key it
    // should get in params._meta["mcpgate/inputKey"] (see INPUT_KEY_META). Several inputs
    // needed at once are requested concurrently, so a gateway can gather them into one
    // input_required result.
    {
        name: 'test_input_required_result_elicitation',
        description: 'Asks the user for their name (elicitation key "user_name"), then greets them.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const name = await askField(ctx, 'user_name', 'What is your name?', 'name', 'string');
            if (name.error) return name.error;
            return { content: [text(`Hello, ${name.value}!`)] };
        },
    },
    {
        name: 'test_input_required_result_sampling',
        description: 'Asks the client\'s LLM for the capital of France (sampling key "capital_question").',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const answer = await sample(ctx, 'capital_question', 'What is the capital of France?', 100);
            return { content: [text(`LLM answered: ${answer}`)] };
        },
    },
    {
        name: 'test_input_required_result_list_roots',
        description: 'Asks the client for its roots (roots/list key "client_roots") and lists them.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const roots = await listRoots(ctx, 'client_roots');
            return { content: [text(`Client roots (${roots.length}): ${describeRoots(roots)}`)] };
        },
    },
    {
        name: 'test_input_required_result_request_state',
        description: 'Asks for a confirmation (elicitation key "confirm"); answers "state-ok" once it has it.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const ok = await askField(ctx, 'confirm', 'Please confirm', 'ok', 'boolean');
            if (ok.error) return ok.error;
            return { content: [text(`state-ok: confirmation received (ok=${ok.value})`)] };
        },
    },
    {
        name: 'test_input_required_result_multiple_inputs',
        description:
            'Needs three inputs at once, requested concurrently: elicitation "user_name", sampling "greeting", ' +
            'roots/list "client_roots" (each only when the client declared the capability).',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const caps = ctx.clientCapabilities ?? {};
            if (!caps.elicitation && !caps.sampling && !caps.roots) {
                throw missingCapability('elicitation', 'sampling', 'roots');
            }
            const [name, greeting, roots] = await Promise.all([
                caps.elicitation ? askField(ctx, 'user_name', 'What is your name?', 'name', 'string') : undefined,
                caps.sampling ? sample(ctx, 'greeting', 'Generate a greeting', 50) : undefined,
                caps.roots ? listRoots(ctx, 'client_roots') : undefined,
            ]);
            if (name?.error) return name.error;
            const parts = [];
            if (name) parts.push(`name=${name.value}`);
            if (greeting !== undefined) parts.push(`greeting=${JSON.stringify(greeting)}`);
            if (roots) parts.push(`roots=${describeRoots(roots)}`);
            return { content: [text(`All inputs received: ${parts.join('; ')}`)] };
        },
    },
    {
        name: 'test_input_required_result_multi_round',
        description: 'Asks two questions one after the other: elicitation "step1" (name), then "step2" (color).',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const name = await askField(ctx, 'step1', 'Step 1: What is your name?', 'name', 'string');
            if (name.error) return name.error;
            const color = await askField(ctx, 'step2', 'Step 2: What is your favorite color?', 'color', 'string');
            if (color.error) return color.error;
            return { content: [text(`${name.value}'s favorite color is ${color.value}`)] };
        },
    },
    {
        name: 'test_input_required_result_tampered_state',
        description: 'Asks for a confirmation (elicitation key "confirm"); used to test that tampered requestState is rejected.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const ok = await askField(ctx, 'confirm', 'Please confirm', 'ok', 'boolean');
            if (ok.error) return ok.error;
            return { content: [text(`Confirmed (ok=${ok.value})`)] };
        },
    },
    {
        name: 'test_input_required_result_capabilities',
        description:
            'Would like a user answer (elicitation "user_name") and an LLM summary (sampling "summary"); asks only ' +
            'for what the client declared it supports.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const caps = ctx.clientCapabilities ?? {};
            if (!caps.elicitation && !caps.sampling) throw missingCapability('sampling');
            const [name, summary] = await Promise.allSettled([
                caps.elicitation ? askField(ctx, 'user_name', 'What is your name?', 'name', 'string') : undefined,
                caps.sampling ? sample(ctx, 'summary', 'Summarize the capabilities test in one sentence', 50) : undefined,
            ]);
            const parts = [];
            if (name.status === 'fulfilled' && name.value && !name.value.error) parts.push(`name=${name.value.value}`);
            if (summary.status === 'fulfilled' && summary.value !== undefined) parts.push(`summary=${JSON.stringify(summary.value)}`);
            if (parts.length === 0) {
                const reason = [name, summary].find((r) => r.status === 'rejected')?.reason;
                return toolError(`No input could be obtained${reason ? `: ${reason.message ?? reason}` : ''}`);
            }
            return { content: [text(`Inputs used: ${parts.join('; ')}`)] };
        },
    },
    {
        name: 'test_missing_capability',
        description:
            'Needs the client\'s sampling capability: without it fails with -32021 ' +
            '(data.requiredCapabilities = {"sampling": {}}); with it asks the LLM (sampling key "completion").',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            if (!ctx.clientCapabilities?.sampling) throw missingCapability('sampling');
            const answer = await sample(ctx, 'completion', 'Say hello', 20);
            return { content: [text(`LLM said: ${answer}`)] };
        },
    },
    {
        name: 'test_logging_tool',
        description: 'Sends two info log notifications (honouring logging/setLevel), then returns.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            await ctx.log('info', 'test_logging_tool started');
            await sleep(10);
            await ctx.log('info', 'test_logging_tool finished');
            return { content: [text('Logging tool executed')] };
        },
    },
    {
        name: 'test_streaming_elicitation',
        description: 'Asks the user to confirm (elicitation key "confirmation") mid-call; needs the elicitation capability.',
        inputSchema: EMPTY_INPUT,
        run: async (_args, ctx) => {
            const ok = await askField(ctx, 'confirmation', 'Continue with the streaming elicitation test?', 'confirm', 'boolean');
            if (ok.error) return ok.error;
            return { content: [text(`Streaming elicitation answered (confirm=${ok.value})`)] };
        },
    },
    {
        // For the 0.2 alpha's (pending, not scored) http-custom-header-server-validation: a
        // tool with an x-mcp-header parameter, which a SEP-2243 client mirrors in a header.
        name: 'test_header_param',
        description: 'Echoes its "region" argument (mirrored by SEP-2243 clients in the Mcp-Param-Region header).',
        inputSchema: {
            type: 'object',
            properties: { region: { type: 'string', description: 'Any region name', 'x-mcp-header': 'Region' } },
            required: ['region'],
        },
        run: async (args) => ({ content: [text(`region=${args.region}`)] }),
    },
    {
        name: 'test_touch_resource',
        description:
            'Sends notifications/resources/updated for test://watched-resource to every session ' +
            'subscribed to it (on its standalone GET stream).',
        inputSchema: EMPTY_INPUT,
        run: async () => {
            const uri = 'test://watched-resource';
            const n = await broadcast(async (s) => {
                if (!s.subscriptions.has(uri)) throw new Error('not subscribed');
                await s.server.sendResourceUpdated({ uri });
            });
            return { content: [text(`resource update sent to ${n} session(s)`)] };
        },
    },
    {
        name: 'test_trigger_tool_change',
        description:
            'Changes the tool list (adds test_dynamic_tool, or removes it when present), then sends ' +
            'notifications/tools/list_changed to every open session (on its standalone GET stream).',
        inputSchema: EMPTY_INPUT,
        run: async () => {
            dynamic.tool = !dynamic.tool;
            const n = await broadcast((s) => s.server.sendToolListChanged());
            return {
                content: [
                    text(`${DYNAMIC_TOOL.name} ${dynamic.tool ? 'added' : 'removed'}; notifications/tools/list_changed sent to ${n} session(s)`),
                ],
            };
        },
    },
    {
        name: 'test_trigger_prompt_change',
        description:
            'Changes the prompt list (adds test_dynamic_prompt, or removes it when present), then sends ' +
            'notifications/prompts/list_changed to every open session (on its standalone GET stream).',
        inputSchema: EMPTY_INPUT,
        run: async () => {
            dynamic.prompt = !dynamic.prompt;
            const n = await broadcast((s) => s.server.sendPromptListChanged());
            return {
                content: [
                    text(`${DYNAMIC_PROMPT.name} ${dynamic.prompt ? 'added' : 'removed'}; notifications/prompts/list_changed sent to ${n} session(s)`),
                ],
            };
        },
    },
];

// The tool and the prompt the test_trigger_*_change tools add and remove (server-wide, for
// every session). Absent at start.
const dynamic = { tool: false, prompt: false };
const TOOLS_BY_NAME = new Map(TOOLS.map((t) => [t.name, t]));
function listedTools() {
    return dynamic.tool ? [...TOOLS, DYNAMIC_TOOL] : TOOLS;
}
function findTool(name) {
    return TOOLS_BY_NAME.get(name) ?? (dynamic.tool && name === DYNAMIC_TOOL.name ? DYNAMIC_TOOL : undefined);
}

function toolError(message) {
    return { isError: true, content: [text(message)] };
}

function describeElicitation(result) {
    return `action=${result.action}, content=${JSON.stringify(result.content ?? {})}`;
}

// ---------------------------------------------------------------------------------------
// Input from the client (server->client requests), for the tools and prompts above
// ---------------------------------------------------------------------------------------
// params._meta key naming the MRTR inputRequests key a bridging gateway should use for a
// request (mcpgate convention; a legacy client just ignores it).
const INPUT_KEY_META = 'mcpgate/inputKey';
const INPUT_TIMEOUT_MS =
    Number(process.env.FIXTURE_INPUT_TIMEOUT_MS) > 0 ? Number(process.env.FIXTURE_INPUT_TIMEOUT_MS) : 60_000;
const CAPABILITY_FOR_METHOD = {
    'elicitation/create': 'elicitation',
    'sampling/createMessage': 'sampling',
    'roots/list': 'roots',
};
const MAX_ASKS = 3;

// MissingRequiredClientCapabilityError (the code and data shape of the 2026-07-28 schema; a
// legacy client sees an ordinary implementation-defined server error). A plain Error with
// code/data: the SDK sends its message as is (McpError would prefix "MCP error -32021: ").
function missingCapability(...capabilities) {
    return Object.assign(new Error(`Missing required client capability: ${capabilities.join(', ')}`), {
        code: -32021,
        data: { requiredCapabilities: Object.fromEntries(capabilities.map((c) => [c, {}])) },
    });
}

// The input helpers shared by tools/call and prompts/get handlers.
function inputContext(server, extra) {
    const clientCapabilities = server.getClientCapabilities();
    return {
        clientCapabilities,
        // Sends one server->client request on the calling request's stream and waits for the
        // answer (bounded by INPUT_TIMEOUT_MS; abandoned when the calling request is cancelled).
        input: async (key, method, params, resultSchema) => {
            const capability = CAPABILITY_FOR_METHOD[method];
            if (capability && !clientCapabilities?.[capability]) throw missingCapability(capability);
            const withKey = { ...params, _meta: { ...(params?._meta ?? {}), [INPUT_KEY_META]: key } };
            return extra.sendRequest({ method, params: withKey }, resultSchema, {
                signal: extra.signal,
                timeout: INPUT_TIMEOUT_MS,
            });
        },
    };
}

// Elicits one required field of a primitive type. An accepted answer without a usable value
// is asked again (up to MAX_ASKS times in all); decline/cancel ends the call with a tool error.
// Returns { value } or { error: <CallToolResult> }.
async function askField(ctx, key, message, field, type) {
    const params = {
        message,
        requestedSchema: { type: 'object', properties: { [field]: { type } }, required: [field] },
    };
    for (let attempt = 1; attempt <= MAX_ASKS; attempt++) {
        const result = await ctx.input(key, 'elicitation/create', params, sdk.ElicitResultSchema);
        if (result.action !== 'accept') return { error: toolError(`Elicitation "${key}" ended: ${result.action}`) };
        const value = result.content?.[field];
        if (typeof value === type) return { value };
    }
    return { error: toolError(`Elicitation "${key}" gave no usable "${field}" (${type}) after ${MAX_ASKS} attempts`) };
}

async function sample(ctx, key, prompt, maxTokens) {
    const result = await ctx.input(
        key,
        'sampling/createMessage',
        { messages: [{ role: 'user', content: text(prompt) }], maxTokens },
        sdk.CreateMessageResultSchema,
    );
    const blocks = Array.isArray(result.content) ? result.content : [result.content];
    return blocks.map((c) => (c && c.type === 'text' ? c.text : JSON.stringify(c))).join('\n');
}

async function listRoots(ctx, key) {
    const result = await ctx.input(key, 'roots/list', {}, sdk.ListRootsResultSchema);
    return result.roots;
}

function describeRoots(roots) {
    return roots.map((r) => (r.name ? `${r.uri} (${r.name})` : r.uri)).join(', ') || '(none)';
}

// Runs fn for every open session (list_changed notifications); returns how many it reached.
async function broadcast(fn) {
    const results = await Promise.allSettled([...sessions.values()].map((s) => fn(s)));
    return results.filter((r) => r.status === 'fulfilled').length;
}

// ---------------------------------------------------------------------------------------
// Catalogue: resources, templates, prompts, completions
// ---------------------------------------------------------------------------------------
const RESOURCES = [
    {
        uri: 'test://static-text',
        name: 'static-text',
        title: 'Static text resource',
        description: 'A fixed text resource.',
        mimeType: 'text/plain',
        read: () => ({ text: 'This is the content of the static text resource.' }),
    },
    {
        uri: 'test://static-binary',
        name: 'static-binary',
        title: 'Static binary resource',
        description: 'A fixed binary resource (1x1 red PNG).',
        mimeType: 'image/png',
        read: () => ({ blob: RED_PIXEL_PNG }),
    },
    {
        uri: 'test://watched-resource',
        name: 'watched-resource',
        title: 'Watched resource',
        description: 'A resource clients may subscribe to.',
        mimeType: 'text/plain',
        read: () => ({ text: 'This is a resource that clients may subscribe to.' }),
    },
];
const RESOURCES_BY_URI = new Map(RESOURCES.map((r) => [r.uri, r]));

const TEMPLATES = [
    {
        uriTemplate: 'test://template/{id}/data',
        name: 'template-data',
        title: 'Templated data resource',
        description: 'JSON data for the given id.',
        mimeType: 'application/json',
        match: (uri) => /^test:\/\/template\/([^/?#]+)\/data$/.exec(uri),
        read: (m) => {
            const id = decodeURIComponent(m[1]);
            return { text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) };
        },
    },
];

const PROMPTS = [
    {
        name: 'test_simple_prompt',
        description: 'A prompt without arguments.',
        arguments: [],
        get: () => [{ role: 'user', content: text('This is a simple prompt for testing.') }],
    },
    {
        name: 'test_prompt_with_arguments',
        description: 'A prompt with two required arguments.',
        arguments: [
            { name: 'arg1', description: 'First test argument', required: true },
            { name: 'arg2', description: 'Second test argument', required: true },
        ],
        get: (a) => [
            { role: 'user', content: text(`Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'`) },
        ],
    },
    {
        name: 'test_prompt_with_embedded_resource',
        description: 'A prompt that embeds the resource named by resourceUri.',
        arguments: [{ name: 'resourceUri', description: 'URI of the resource to embed', required: true }],
        get: (a) => [
            {
                role: 'user',
                content: {
                    type: 'resource',
                    resource: {
                        uri: a.resourceUri,
                        mimeType: 'text/plain',
                        text: 'Embedded resource content for testing.',
                    },
                },
            },
            { role: 'user', content: text('Please process the embedded resource above.') },
        ],
    },
    {
        name: 'test_prompt_with_image',
        description: 'A prompt containing an image.',
        arguments: [],
        get: () => [
            { role: 'user', content: { type: 'image', data: RED_PIXEL_PNG, mimeType: 'image/png' } },
            { role: 'user', content: text('Please analyze the image above.') },
        ],
    },
    {
        // 2026-07-28 scenario input-required-result-non-tool-request: a prompts/get that needs
        // input (legacy way: elicitation/create on the prompts/get response stream).
        name: 'test_input_required_result_prompt',
        description: 'A prompt that first asks the user for context (elicitation key "user_context").',
        arguments: [],
        get: async (_args, ctx) => {
            const context = await askField(ctx, 'user_context', 'What context should the prompt use?', 'context', 'string');
            if (context.error) throw new McpError(ErrorCode.InvalidParams, context.error.content[0].text);
            return [{ role: 'user', content: text(`Use this context: ${context.value}`) }];
        },
    },
];
const PROMPTS_BY_NAME = new Map(PROMPTS.map((p) => [p.name, p]));
// Added to / removed from prompts/list by test_trigger_prompt_change.
const DYNAMIC_PROMPT = {
    name: 'test_dynamic_prompt',
    description: 'Present only while test_trigger_prompt_change has toggled it on.',
    arguments: [],
    get: () => [{ role: 'user', content: text('This is the dynamic prompt.') }],
};
function listedPrompts() {
    return dynamic.prompt ? [...PROMPTS, DYNAMIC_PROMPT] : PROMPTS;
}
function findPrompt(name) {
    return PROMPTS_BY_NAME.get(name) ?? (dynamic.prompt && name === DYNAMIC_PROMPT.name ? DYNAMIC_PROMPT : undefined);
}

const COMPLETIONS = {
    'ref/prompt': {
        test_prompt_with_arguments: {
            arg1: ['paris', 'park', 'party', 'test', 'testing', 'testValue1'],
            arg2: ['hello', 'help', 'world', 'testValue2'],
        },
    },
    'ref/resource': {
        'test://template/{id}/data': { id: ['1', '2', '3', '42', '123'] },
    },
};

// ---------------------------------------------------------------------------------------
// Per-session MCP server
// ---------------------------------------------------------------------------------------
function createMcpServer(session) {
    const server = new Server(
        { name: FIXTURE_NAME, title: 'mcpgate conformance fixture', version: FIXTURE_VERSION },
        {
            capabilities: {
                tools: { listChanged: true },
                resources: { subscribe: true, listChanged: true },
                prompts: { listChanged: true },
                logging: {},
                completions: {},
            },
            instructions: 'Conformance fixture for mcpgate: exposes the names the MCP conformance suite calls.',
        },
    );

    server.setRequestHandler(sdk.SetLevelRequestSchema, async (request) => {
        session.logLevel = request.params.level;
        return {};
    });

    server.setRequestHandler(sdk.ListToolsRequestSchema, async () => ({
        tools: listedTools().map(({ name, description, inputSchema }) => ({ name, description, inputSchema })),
    }));

    server.setRequestHandler(sdk.CallToolRequestSchema, async (request, extra) => {
        const tool = findTool(request.params.name);
        if (!tool) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${request.params.name}`);
        const progressToken = request.params._meta?.progressToken;
        const ctx = {
            progressToken,
            clientCapabilities: server.getClientCapabilities(),
            closeSSEStream: extra.closeSSEStream,
            log: async (level, data) => {
                if (session.logLevel && LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(session.logLevel)) return;
                await extra.sendNotification({
                    method: 'notifications/message',
                    params: { level, logger: FIXTURE_NAME, data },
                });
            },
            progress: async (progress, total, message) => {
                if (progressToken === undefined) return;
                await extra.sendNotification({
                    method: 'notifications/progress',
                    params: { progressToken, progress, total, message },
                });
            },
            request: (req, schema) => extra.sendRequest(req, schema),
            ...inputContext(server, extra),
            elicit: async (params) => {
                if (!server.getClientCapabilities()?.elicitation) {
                    return toolError('client does not support elicitation');
                }
                return extra.sendRequest({ method: 'elicitation/create', params }, sdk.ElicitResultSchema);
            },
        };
        return tool.run(request.params.arguments ?? {}, ctx);
    });

    server.setRequestHandler(sdk.ListResourcesRequestSchema, async () => ({
        resources: RESOURCES.map(({ uri, name, title, description, mimeType }) => ({
            uri,
            name,
            title,
            description,
            mimeType,
        })),
    }));

    server.setRequestHandler(sdk.ListResourceTemplatesRequestSchema, async () => ({
        resourceTemplates: TEMPLATES.map(({ uriTemplate, name, title, description, mimeType }) => ({
            uriTemplate,
            name,
            title,
            description,
            mimeType,
        })),
    }));

    server.setRequestHandler(sdk.ReadResourceRequestSchema, async (request) => {
        const { uri } = request.params;
        const direct = RESOURCES_BY_URI.get(uri);
        if (direct) return { contents: [{ uri, mimeType: direct.mimeType, ...direct.read() }] };
        for (const template of TEMPLATES) {
            const m = template.match(uri);
            if (m) return { contents: [{ uri, mimeType: template.mimeType, ...template.read(m) }] };
        }
        throw new McpError(-32002, `Resource not found: ${uri}`, { uri });
    });

    server.setRequestHandler(sdk.SubscribeRequestSchema, async (request) => {
        session.subscriptions.add(request.params.uri);
        return {};
    });

    server.setRequestHandler(sdk.UnsubscribeRequestSchema, async (request) => {
        session.subscriptions.delete(request.params.uri);
        return {};
    });

    server.setRequestHandler(sdk.ListPromptsRequestSchema, async () => ({
        prompts: listedPrompts().map(({ name, description, arguments: args }) => ({ name, description, arguments: args })),
    }));

    server.setRequestHandler(sdk.GetPromptRequestSchema, async (request, extra) => {
        const prompt = findPrompt(request.params.name);
        if (!prompt) throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${request.params.name}`);
        const args = request.params.arguments ?? {};
        const missing = prompt.arguments.filter((a) => a.required && typeof args[a.name] !== 'string');
        if (missing.length > 0) {
            throw new McpError(
                ErrorCode.InvalidParams,
                `Missing required argument(s) for prompt ${prompt.name}: ${missing.map((a) => a.name).join(', ')}`,
            );
        }
        return { description: prompt.description, messages: await prompt.get(args, inputContext(server, extra)) };
    });

    server.setRequestHandler(sdk.CompleteRequestSchema, async (request) => {
        const { ref, argument } = request.params;
        const key = ref.type === 'ref/prompt' ? ref.name : ref.uri;
        const candidates = COMPLETIONS[ref.type]?.[key]?.[argument.name] ?? [];
        const prefix = String(argument.value ?? '').toLowerCase();
        const values = candidates.filter((v) => v.toLowerCase().startsWith(prefix));
        return { completion: { values, total: values.length, hasMore: false } };
    });

    return server;
}

// ---------------------------------------------------------------------------------------
// Resumability: a bounded in-memory event store (one per session)
// ---------------------------------------------------------------------------------------
class MemoryEventStore {
    constructor(limit) {
        this.limit = limit;
        this.seq = 0;
        this.events = new Map(); // eventId -> { streamId, message }, in insertion order
    }

    async storeEvent(streamId, message) {
        const eventId = `${streamId}_${++this.seq}`;
        this.events.set(eventId, { streamId, message });
        while (this.events.size > this.limit) this.events.delete(this.events.keys().next().value);
        return eventId;
    }

    async getStreamIdForEventId(eventId) {
        return this.events.get(eventId)?.streamId;
    }

    async replayEventsAfter(lastEventId, { send }) {
        const last = this.events.get(lastEventId);
        if (!last) return '';
        let after = false;
        for (const [eventId, { streamId, message }] of this.events) {
            if (eventId === lastEventId) {
                after = true;
                continue;
            }
            // Priming events carry an empty message: nothing to replay.
            if (!after || streamId !== last.streamId || !message || !message.jsonrpc) continue;
            await send(eventId, message);
        }
        return last.streamId;
    }
}

// ---------------------------------------------------------------------------------------
// HTTP front: DNS-rebinding protection, session routing, body limits
// ---------------------------------------------------------------------------------------
const sessions = new Map(); // session id -> session
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

function hostnameOf(hostHeader) {
    if (!hostHeader) return null;
    try {
        return new URL(`http://${hostHeader}`).hostname.toLowerCase();
    } catch {
        return null;
    }
}

function hostAllowed(req) {
    if (!opts.hostCheck) return true;
    const host = hostnameOf(req.headers.host);
    if (!host || !LOOPBACK_HOSTS.has(host)) return false;
    const origin = req.headers.origin;
    if (origin !== undefined) {
        try {
            const o = new URL(origin);
            if (!LOOPBACK_HOSTS.has(o.hostname.toLowerCase())) return false;
        } catch {
            return false;
        }
    }
    return true;
}

function sendJsonRpcError(res, status, code, message, extraHeaders = {}) {
    if (res.headersSent) return;
    res.writeHead(status, { 'Content-Type': 'application/json', ...extraHeaders });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on('data', (chunk) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
                reject(Object.assign(new Error('body too large'), { status: 413 }));
                req.destroy();
                return;
            }
            chunks.push(chunk);
        });
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

function isInitialize(body) {
    return body !== null && typeof body === 'object' && !Array.isArray(body) && body.method === 'initialize';
}

async function newSession() {
    const session = { id: undefined, logLevel: undefined, subscriptions: new Set(), lastSeen: Date.now() };
    session.transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore: opts.eventStore ? new MemoryEventStore(EVENTS_PER_SESSION) : undefined,
        retryInterval: opts.eventStore ? SSE_RETRY_MS : undefined,
        onsessioninitialized: (id) => {
            session.id = id;
            sessions.set(id, session);
            verbose(`session ${id} opened (${sessions.size} open)`);
        },
        onsessionclosed: (id) => {
            sessions.delete(id);
            verbose(`session ${id} deleted by client`);
        },
    });
    session.transport.onclose = () => {
        if (session.id) sessions.delete(session.id);
    };
    session.server = createMcpServer(session);
    session.server.onerror = (e) => verbose(`session ${session.id ?? '-'}: ${e && e.message}`);
    await session.server.connect(session.transport);
    return session;
}

async function closeSession(session) {
    sessions.delete(session.id);
    try {
        await session.server.close();
    } catch {
        // already closed
    }
}

function verbose(message) {
    if (opts.verbose) console.error(`[${FIXTURE_NAME}] ${message}`);
}

async function handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://fixture.invalid');
    if (!hostAllowed(req)) {
        verbose(`403 ${req.method} ${url.pathname} host=${req.headers.host} origin=${req.headers.origin ?? '-'}`);
        return sendJsonRpcError(res, 403, -32000, 'Forbidden: Host/Origin header is not a loopback address');
    }
    if (url.pathname === '/healthz' && req.method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        return res.end('ok');
    }
    if (url.pathname !== opts.path) {
        return sendJsonRpcError(res, 404, -32000, `Not found: ${url.pathname}`);
    }

    const sessionId = req.headers['mcp-session-id'];
    if (req.method === 'POST') {
        let raw;
        try {
            raw = await readBody(req);
        } catch (e) {
            return sendJsonRpcError(res, e.status ?? 400, -32600, `Bad request body: ${e.message}`);
        }
        let body;
        try {
            body = JSON.parse(raw);
        } catch {
            return sendJsonRpcError(res, 400, -32700, 'Parse error: body is not JSON');
        }
        verbose(`POST ${Array.isArray(body) ? 'batch' : (body.method ?? (body.id !== undefined ? 'response' : '?'))} session=${sessionId ?? '-'}`);
        if (sessionId !== undefined) {
            const session = sessions.get(sessionId);
            if (!session) return sendJsonRpcError(res, 404, -32001, 'Session not found');
            session.lastSeen = Date.now();
            return session.transport.handleRequest(req, res, body);
        }
        if (!isInitialize(body)) {
            return sendJsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
        }
        if (sessions.size >= MAX_SESSIONS) {
            // Clients of the suite never DELETE their sessions: evict the least recently used.
            const oldest = [...sessions.values()].reduce((a, b) => (b.lastSeen < a.lastSeen ? b : a));
            verbose(`session limit ${MAX_SESSIONS} reached: closing least recently used ${oldest.id}`);
            await closeSession(oldest);
        }
        const session = await newSession();
        await session.transport.handleRequest(req, res, body);
        // A rejected initialize (bad Accept, unsupported version, ...) opens no session.
        if (session.id === undefined) await closeSession(session);
        return;
    }

    if (req.method === 'GET' || req.method === 'DELETE') {
        verbose(`${req.method} session=${sessionId ?? '-'} last-event-id=${req.headers['last-event-id'] ?? '-'}`);
        if (sessionId === undefined) {
            return sendJsonRpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
        }
        const session = sessions.get(sessionId);
        if (!session) return sendJsonRpcError(res, 404, -32001, 'Session not found');
        session.lastSeen = Date.now();
        return session.transport.handleRequest(req, res);
    }

    return sendJsonRpcError(res, 405, -32000, 'Method not allowed', { Allow: 'GET, POST, DELETE' });
}

const httpServer = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
        console.error(`[${FIXTURE_NAME}] error handling ${req.method} ${req.url}: ${e && e.stack}`);
        sendJsonRpcError(res, 500, -32603, 'Internal server error');
    });
});

const sweeper = setInterval(() => {
    const cutoff = Date.now() - SESSION_IDLE_MS;
    for (const session of sessions.values()) {
        if (session.lastSeen < cutoff) {
            verbose(`session ${session.id} idle: closing`);
            void closeSession(session);
        }
    }
}, 60 * 1000);
sweeper.unref();

let stopping = false;
async function stop(signal) {
    if (stopping) return;
    stopping = true;
    verbose(`${signal}: stopping`);
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    await Promise.allSettled([...sessions.values()].map(closeSession));
    httpServer.closeAllConnections?.();
    httpServer.close(() => process.exit(0));
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));

httpServer.on('error', (e) => {
    console.error(`${FIXTURE_NAME}: cannot listen on 127.0.0.1:${opts.port}: ${e.message}`);
    process.exit(1);
});
httpServer.listen(opts.port, '127.0.0.1', () => {
    const { port } = httpServer.address();
    console.log(`${FIXTURE_NAME} listening on http://127.0.0.1:${port}${opts.path} (sdk ${sdk.sdkVersion}, node ${process.version})`);
});
