// An Express app instrumented with OpenTelemetry, as a Node user sets it up: the Node SDK
// with the HTTP and Express instrumentations, its OTLP/HTTP exporter configured by the
// standard variables only (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_EXPORTER_OTLP_PROTOCOL http/json or http/protobuf, OTEL_SERVICE_NAME, ...).
//
//   node app.js PORT
//
// Routes: GET /users/:id, GET /slow (200 ms), POST /items (201), GET /boom (an Error
// thrown in the handler: 500), anything else 404. SIGTERM flushes every span, then exits.
'use strict';

const { NodeSDK } = require('@opentelemetry/sdk-node');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { ExpressInstrumentation } = require('@opentelemetry/instrumentation-express');

// The user's id on the server span, from the request (a handler's active span is
// Express's own, below the server span).
const http = new HttpInstrumentation({
  startIncomingSpanHook: (request) => {
    const user = /^\/users\/(\w+)/.exec(request.url || '');
    return user ? { 'enduser.id': `user-${user[1]}` } : {};
  },
});
const sdk = new NodeSDK({ instrumentations: [http, new ExpressInstrumentation()] });
sdk.start();

// Required after the SDK started, so that the instrumentations hook them.
const express = require('express');

const app = express();
app.get('/users/:id', (req, res) => res.json({ id: req.params.id }));
app.get('/slow', (req, res) => setTimeout(() => res.json({ slept: 200 }), 200));
app.post('/items', (req, res) => res.status(201).json({ created: true }));
app.get('/boom', () => {
  throw new TypeError('boom in express');
});

const server = app.listen(Number(process.argv[2]), '127.0.0.1', () => {
  console.log('listening');
});

process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => sdk.shutdown().finally(() => process.exit(0)));
});
