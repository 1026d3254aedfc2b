#!/usr/bin/env node
// Runs one task through the hivemesh gateway from Node.js, with @grpc/grpc-js and the contracts
// loaded at run time from the .proto files by @grpc/proto-loader (no generated code):
// SubmitTask, then WatchTask until the task ends, joining the answer as it streams.
//
//   node hivemesh-run.js [--address host:port] [--api-key KEY] [--user U] [--session S]
//                        [--proto-path DIR]... "what is 12 * (3 + 4)?"
//
// The answer goes to stdout, one line per event to stderr. The exit status is that of
// `hivemesh run`: 0 completed, 1 failed, canceled or refused, 2 bad usage, 3 the task waits
// for the user's answer (the question is printed), 4 the gateway cannot be reached.
'use strict';

const crypto = require('node:crypto');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const EXIT = { completed: 0, failed: 1, usage: 2, inputRequired: 3, unavailable: 4 };
const REPO = path.resolve(__dirname, '..', '..');
// The repository's contracts, and buf/validate/validate.proto as `python tools/protodeps.py`
// writes it (any copy of protovalidate's validate.proto will do).
const DEFAULT_PROTO_PATHS = [path.join(REPO, 'protos'), path.join(REPO, 'build', 'protodeps')];
const GATEWAY = 'hivemesh.gateway.v1.GatewayService';

// SubmitTask is idempotent (its request_id), so the channel retries it while the gateway is
// unreachable; a watch is resumed by hand instead, from the last sequence received.
const SERVICE_CONFIG = {
  methodConfig: [
    {
      name: [{ service: GATEWAY, method: 'SubmitTask' }],
      retryPolicy: {
        maxAttempts: 4,
        initialBackoff: '0.2s',
        maxBackoff: '2s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
};
const WATCH_RESUMES = 5;

function usage(message) {
  process.stderr.write(`hivemesh-run: ${message}\n`);
  process.exit(EXIT.usage);
}

function parseCommandLine() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        address: { type: 'string', default: process.env.HIVEMESH_GATEWAY || 'localhost:50051' },
        'api-key': { type: 'string', default: process.env.HIVEMESH_API_KEY || '' },
        user: { type: 'string', default: process.env.HIVEMESH_USER || os.userInfo().username },
        session: { type: 'string', default: process.env.HIVEMESH_SESSION || 'default' },
        'proto-path': { type: 'string', multiple: true, default: DEFAULT_PROTO_PATHS },
        timeout: { type: 'string', default: '60' },
      },
    });
  } catch (err) {
    usage(err.message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) usage('give the request as one argument, e.g. "what is 2 + 2?"');
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) usage(`--timeout must be a positive number of seconds, got ${values.timeout}`);
  return { ...values, timeoutS, text: positionals[0] };
}

function gatewayClient(address, protoPaths) {
  const definition = protoLoader.loadSync('hivemesh/gateway/v1/gateway_service.proto', {
    includeDirs: protoPaths,
    keepCase: true, // field names as the .proto spells them: task_id, answer_delta
    longs: String, // int64 sequences as decimal strings, exact beyond 2^53
    enums: String, // enum values by name: TASK_STATE_COMPLETED
    defaults: true,
    oneofs: true, // event.kind names the member of the oneof that is set
  });
  const { GatewayService } = grpc.loadPackageDefinition(definition).hivemesh.gateway.v1;
  return new GatewayService(address, grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(SERVICE_CONFIG),
  });
}

// Joins answer_delta texts into the answer of the task's latest attempt (TaskEvent.attempt).
// A run that starts over (a takeover after its worker died, a retry) generates the answer anew:
// when a higher attempt appears the text held is dropped, and a late delta of a lower one is
// ignored. Events logged before they carried an attempt count each WORKING change as the next.
class AnswerJoiner {
  constructor() {
    this.attempt = 0;
    this.chunks = [];
  }

  get text() {
    return this.chunks.join('');
  }

  add(event) {
    let attempt = event.attempt;
    const working = event.kind === 'state_changed' && event.state_changed.state === 'TASK_STATE_WORKING';
    if (attempt === 0 && working) attempt = this.attempt + 1;
    if (attempt > this.attempt) {
      this.attempt = attempt;
      this.chunks = [];
    }
    if (event.kind === 'answer_delta' && (attempt === 0 || attempt === this.attempt)) {
      this.chunks.push(event.answer_delta.text);
    }
  }
}

function describe(event) {
  const body = event[event.kind];
  switch (event.kind) {
    case 'submitted':
      return JSON.stringify(body.input_text);
    case 'state_changed':
      return `${body.state.replace('TASK_STATE_', '')} ${body.reason}`;
    case 'intent_recognized':
      return `${body.intent} (${body.confidence.toFixed(2)})`;
    case 'step_started':
      return `step ${body.step}: ${body.name}`;
    case 'tool_called':
      return `${body.tool_name} (${body.idempotency_key})`;
    case 'tool_result':
      return body.error ? `${body.tool_name} failed: ${body.error.reason}` : `${body.tool_name}: ${body.display}`;
    case 'answer_delta':
      return JSON.stringify(body.text);
    case 'notice':
      return `${body.code}: ${body.message}`;
    case 'input_requested':
      return body.question;
    case 'completed':
      return body.answer;
    case 'failed':
      return `${body.error.reason}: ${body.error.message}`;
    case 'canceled':
      return body.reason;
    default:
      return '';
  }
}

function submit(client, request, metadata, deadline) {
  return new Promise((resolve, reject) => {
    client.SubmitTask(request, metadata, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

// Calls onEvent with each event of the task, from the first, until the task ends or asks a question.
// A stream that drops is opened again after the last sequence received: the gateway replays its
// log from there, so no event is missed or seen twice.
async function watch(client, taskId, metadata, deadline, onEvent) {
  let after = '0';
  for (let resumes = 0; ; resumes += 1) {
    const call = client.WatchTask({ task_id: taskId, after_sequence: after }, metadata, { deadline });
    try {
      for await (const { event } of call) {
        after = event.sequence;
        onEvent(event);
      }
      return;
    } catch (err) {
      if (err.code !== grpc.status.UNAVAILABLE || resumes === WATCH_RESUMES) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** resumes));
    }
  }
}

async function main() {
  const args = parseCommandLine();
  let client;
  try {
    client = gatewayClient(args.address, args['proto-path']);
  } catch (err) {
    usage(
      `cannot load the contracts from ${args['proto-path'].join(', ')}: ${err.message}\n` +
        '(buf/validate/validate.proto: `python tools/protodeps.py` writes it into build/protodeps)',
    );
  }
  const metadata = new grpc.Metadata();
  if (args['api-key']) metadata.set('x-api-key', args['api-key']);
  const deadline = Date.now() + args.timeoutS * 1000;
  try {
    const { task } = await submit(
      client,
      {
        request_id: crypto.randomUUID(), // the same id again returns the same task
        text: args.text,
        scope: { user_id: args.user, session_id: args.session }, // the tenant is the key's
      },
      metadata,
      deadline,
    );
    process.stderr.write(`task ${task.task_id} (tenant ${task.scope.tenant_id})\n`);

    const answer = new AnswerJoiner();
    let last = null;
    await watch(client, task.task_id, metadata, deadline, (event) => {
      answer.add(event);
      last = event;
      process.stderr.write(`  [${event.sequence}] attempt ${event.attempt} ${event.kind} ${describe(event)}\n`);
    });

    if (last?.kind === 'completed') {
      // The joined deltas are the answer as it was streamed; the completed event holds it whole.
      process.stdout.write(`${last.completed.answer || answer.text.trim()}\n`);
      return EXIT.completed;
    }
    if (last?.kind === 'input_requested') {
      process.stdout.write(`${last.input_requested.question}\n`);
      return EXIT.inputRequired;
    }
    process.stderr.write(`task ended without an answer: ${last ? `${last.kind} ${describe(last)}` : 'no events'}\n`);
    return EXIT.failed;
  } catch (err) {
    if (!(err && typeof err.code === 'number')) throw err;
    process.stderr.write(`hivemesh-run: ${grpc.status[err.code]}: ${err.details}\n`);
    return err.code === grpc.status.UNAVAILABLE ? EXIT.unavailable : EXIT.failed;
  } finally {
    client.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`hivemesh-run: ${err.stack || err}\n`);
    process.exitCode = EXIT.failed;
  },
);
