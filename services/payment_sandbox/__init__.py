"""A card processor's sandbox: the external payment provider Billing talks to over HTTP.

A development tool, not a service: it imports nothing from `services`, and no
production install contains it. Stripe's semantics are the model. Run it with
`python -m services.payment_sandbox --help`; the local stack runs it through
`services/devstack/payment_sandbox_process.py`.

Conventions
-----------
- JSON in and out (`Content-Type: application/json`); bodies at most 64 KiB
  (else 413). Amounts are integers in minor units (1250 = 12.50), 1 to
  99,999,999; currencies three upper-case letters ("RUB"); `created` is unix
  seconds.
- Every endpoint except `GET /healthz` needs `Authorization: Bearer <api key>`
  (else 401, also for unknown paths).
- Errors: `{"error": {"type", "code", "message"}}` with type
  `invalid_request_error` (400 bad body/header/query, unknown token; 404 unknown
  id or endpoint; 409 settling a settled transfer), `authentication_error` (401),
  `idempotency_error` (409), `card_error` (402), `api_error` (500). Messages
  never repeat what the caller sent.
- Kept in memory only, at most 100,000 of each kind (charges, transfers,
  idempotency keys, events); past that the oldest are forgotten.

Charges
-------
`POST /v1/charges`, header `Idempotency-Key` (required, 1 to 255 characters),
body `{"amount", "currency", "source", "reference" (1-100 chars, the caller's
payment id), "description" (optional, at most 500)}`; other fields are a 400.
Answers:
- 200 with the charge when it succeeds:
  `{"id": "ch_<24 hex>", "object": "charge", "amount", "currency", "reference",
  "description", "status": "succeeded", "failure_code": null,
  "failure_message": null, "created"}`.
- 402 when the card is declined (the charge is still recorded, as "failed"):
  `{"error": {"type": "card_error", "code": <failure_code>, "message",
  "charge": "ch_..."}}`. A processing_error is a decline too (402), as with
  Stripe; Billing may treat that code as worth a new attempt later.
Test tokens (`source`): `tok_visa` succeeds; `tok_chargeDeclined` card_declined;
`tok_chargeDeclinedInsufficientFunds` insufficient_funds;
`tok_chargeDeclinedExpiredCard` expired_card; `tok_chargeDeclinedProcessingError`
processing_error; `tok_hang`: recorded at once as "pending" (visible to GETs),
the answer held `--hang-seconds`, then it succeeds, answers 200 (if the caller
still listens) and sends charge.succeeded; `tok_hangDeclined` the same, but it
is then declined (processing_error: the card network timed out, nothing
charged). Any other token is a 400.

Idempotency: the first request with a key is carried out; every later request
with that key and the same endpoint and body (fields compared as JSON, not as
bytes) gets the first answer again, status and body byte for byte, waiting if
the first is still in progress. The same key with another endpoint or body is
409 `idempotency_error`. A 400 is not remembered: fix the request, keep the key.

`GET /v1/charges/{id}` → the charge (404 if unknown).
`GET /v1/charges?reference=R` → `{"object": "list", "data": [charges, oldest
first]}`: how to reconcile a charge whose answer never came.

Bank transfers
--------------
`POST /v1/transfers`, `Idempotency-Key` as above, body `{"amount", "currency",
"reference"}` → 200 `{"id": "tr_<24 hex>", "object": "transfer", "amount",
"currency", "reference", "bank_reference": "WH-XXXXXXXX" (what the payer writes on
the transfer), "status": "pending", "failure_code": null, "created"}`. It turns
"succeeded" when the money arrives (after `--transfer-seconds`, if given, or on
`POST /v1/sandbox/transfers/{id}/arrive`), or "failed" with failure_code
"transfer_returned" on `POST /v1/sandbox/transfers/{id}/fail`; each answers the
transfer, 404 if unknown, 409 if no longer pending.
`GET /v1/transfers/{id}` and `GET /v1/transfers?reference=R` as for charges.

Webhooks
--------
Every settled charge or transfer makes an event: `{"id": "evt_<24 hex>",
"object": "event", "type": "charge.succeeded" | "charge.failed" |
"transfer.succeeded" | "transfer.failed", "created", "data": {"object": <the
charge or transfer as GET shows it>}}`, POSTed to `--webhook-url` with
`Content-Type: application/json` and

    Sandbox-Signature: t=<unix seconds>,v1=<64 lower-case hex digits>

where the hex is HMAC-SHA256, keyed by the webhook secret, of the bytes
`<t as decimal ASCII>` + `.` + `<the raw request body, exactly as received>`.
The secret is the text of `--webhook-secret-file` without surrounding
whitespace, as UTF-8 bytes (at least 32). To verify: split the header on `,`,
then each part once on `=`; take `t` and every `v1` (other keys may appear
later: ignore them); recompute over the raw body (never over re-serialised
JSON); accept if any `v1` equals it by a constant-time comparison and
|now - t| <= 300 seconds.

Delivery is at least once: until the receiver answers 2xx, each copy is retried
after about 0.5 s, doubling to at most 30 s, each wait randomly shortened by up
to half; it gives up after 20 attempts or an hour. Every attempt is signed
afresh with its own `t`; the body (and event id) never change, so receivers
deduplicate by event id. Up to 16 deliveries run at once; a slow receiver
answer (10 s timeout per attempt) does not hold up other events. Order is not
guaranteed.

Test controls (Bearer-authenticated)
------------------------------------
- `POST /v1/sandbox/webhooks/mode` `{"duplicates": 0-100 (extra copies of each
  event), "delay_seconds": 0-3600 (hold each new delivery), "shuffle": bool
  (held deliveries wait an extra random 0..delay_seconds, so they arrive in
  random order; needs delay_seconds > 0)}`; omitted fields reset to 0/false;
  applies to events made afterwards.
- `POST /v1/sandbox/webhooks/replay` → `{"object": "replay", "events": n}`:
  every kept event delivered once more, in random order.
- `GET /v1/sandbox/events` → list of events, each with `"delivery":
  {"attempts", "delivered", "last_status", "last_error"}`.
- `GET /v1/sandbox/charges` → list of every kept charge.
- `GET /healthz` → 200 `{"status": "ok"}`, no key needed.
"""
