"""The outside world Notification talks to: an SMTP server and SMS and push gateways.

A development tool, not a service, like services/payment_sandbox (whose
command-line helpers and HTTP plumbing it reuses): no production install
contains it. Run it with `python -m services.message_sandbox --help`; the local
stack runs it through `services/devstack/message_sandbox_process.py`.

SMTP
----
Accepts any mail from anyone (no AUTH, no TLS), messages up to 256 KiB (else
552). Each one is kept with its envelope sender and recipients, its decoded
Subject, Message-ID and text/plain body.

HTTP gateways
-------------
JSON in and out; bodies at most 64 KiB (413), sent with a Content-Length.
`Authorization: Bearer <key>`: the SMS key for /v1/sms, the push key for
/v1/push, either for the test controls, none for `GET /healthz` (else 401, also
for unknown paths). Errors: `{"error": {"type", "code", "message"}}`; messages
never repeat what the caller sent.

- `POST /v1/sms` `{"to": "+<E.164 digits>", "body": 1-1600 characters}` →
  200 `{"id": "sms_<24 hex>", "status": "accepted"}`; 400 `phone_invalid` /
  `parameter_invalid` / `parameter_missing` / `parameter_unknown`.
- `POST /v1/push` `{"userId": "<uuid>", "title": 1-200, "body": 1-4000}` →
  200 `{"id": "push_<24 hex>", "status": "accepted"}`; 400 `user_id_invalid` etc.
- Both need `Idempotency-Key` (1 to 255 characters; 400 `idempotency_key_missing`
  / `idempotency_key_invalid`): a key seen before on that endpoint gets the first
  answer again and stores nothing new. Refused attempts (400, injected failures)
  are not remembered, so a retry with the same key can still succeed.

Test controls
-------------
- `GET /v1/sandbox/messages?channel=email|sms|push[&to=X]` → `{"messages": [...]}`,
  every kept message of the channel in arrival order (at most 10,000 of all
  channels are kept; past that the oldest are forgotten):
  e-mail `{"channel": "email", "from", "recipients": [..], "subject", "body",
  "messageId", "receivedAt"}`; SMS `{"channel": "sms", "id", "to", "body",
  "idempotencyKey", "receivedAt"}`; push `{"channel": "push", "id", "to",
  "title", "body", "idempotencyKey", "receivedAt"}`. `receivedAt` is unix
  seconds (float); `to` filters on the phone, the user id or any recipient.
- `POST /v1/sandbox/failures` `{"channel": "email|sms|push", "count": 1-1000,
  "kind": "transient|permanent"}` → `{"channel", "pending": n}`: the next `count`
  deliveries on the channel fail (queued after failures already pending).
  SMTP: transient `451 4.3.0`, permanent `550 5.1.1`, both in answer to DATA.
  HTTP: transient 503 `unavailable`, permanent 400 `recipient_rejected`. A
  failed delivery stores nothing; a repeated Idempotency-Key is answered from
  memory and consumes no failure.
- `POST /v1/sandbox/reset` → `{"status": "reset"}`: messages, remembered keys and
  pending failures all forgotten.
- `GET /healthz` → `{"status": "ok"}`.
"""
