#!/usr/bin/env node
// Hand a document to Quern over AMQP and wait for its job to end: Node.js with amqplib.
//
//   npm install amqplib
//   AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F node submit.js products.csv [--format csv]
//       [--idempotency-key KEY] [--timeout 300]
//
// Prints every reply as one JSON line (the accepted job and then the finished one, or only the
// finished job when it ended as it was taken, or an error) and
// exits 0 if the job succeeded, 1 if it failed or was cancelled, 2 if Quern refused the message,
// 3 if no reply came in time.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const amqp = require('amqplib');

const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      format: { type: 'string' },
      'idempotency-key': { type: 'string' },
      timeout: { type: 'string', default: '300' },
    },
  });
  if (positionals.length !== 1) {
    console.error('usage: node submit.js FILE [--format csv] [--idempotency-key KEY] [--timeout 300]');
    return 64;
  }
  const file = positionals[0];
  const timeoutMs = Number(values.timeout) * 1000;
  const message = { name: path.basename(file), content_base64: fs.readFileSync(file).toString('base64') };
  if (values.format) message.format = values.format;
  if (values['idempotency-key']) message.idempotency_key = values['idempotency-key'];

  const connection = await amqp.connect(process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2F');
  try {
    const channel = await connection.createConfirmChannel(); // publishes are confirmed by the broker
    // A private queue for the replies; the broker deletes it when we disconnect.
    const { queue: replyQueue } = await channel.assertQueue('', { exclusive: true });
    await channel.assertQueue('quern.submit', { durable: true }); // as Quern declares it: durable, no arguments
    const correlationId = crypto.randomUUID();

    const outcome = new Promise((resolve) => {
      let timer;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          console.error(`no reply from Quern within ${values.timeout} s`);
          resolve(3);
        }, timeoutMs);
      };
      arm();
      channel.consume(replyQueue, (msg) => {
        if (msg === null || msg.properties.correlationId !== correlationId) return;
        arm();
        const reply = JSON.parse(msg.content.toString('utf8'));
        console.log(JSON.stringify(reply));
        if (reply.error) { clearTimeout(timer); resolve(2); }
        else if (FINISHED.has(reply.status)) { clearTimeout(timer); resolve(reply.status === 'succeeded' ? 0 : 1); }
      }, { noAck: true });
    });

    channel.sendToQueue('quern.submit', Buffer.from(JSON.stringify(message)), {
      contentType: 'application/json',
      persistent: true,
      replyTo: replyQueue,
      correlationId,
    });
    await channel.waitForConfirms();
    return await outcome;
  } finally {
    await connection.close();
  }
}

main().then((code) => { process.exitCode = code; }, (error) => { console.error(error); process.exitCode = 4; });
