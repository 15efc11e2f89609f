-- Money is integer minor units (money.py): exact, summed without rounding.
CREATE TABLE invoices (
    id            uuid PRIMARY KEY,
    user_id       uuid        NOT NULL,
    amount_minor  bigint      NOT NULL CHECK (amount_minor > 0),
    -- Settled by successful payments; the invoice is PAID when it reaches amount_minor.
    paid_minor    bigint      NOT NULL DEFAULT 0 CHECK (paid_minor >= 0 AND paid_minor <= amount_minor),
    currency      text        NOT NULL,
    description   text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('PENDING', 'PAID', 'CANCELLED')),
    due_at        timestamptz NOT NULL,
    -- When InvoiceOverdue was published (once per invoice).
    overdue_at    timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
-- A user's invoices and everyone's, newest first.
CREATE INDEX invoices_by_user ON invoices (user_id, created_at DESC, id DESC);
CREATE INDEX invoices_listing ON invoices (created_at DESC, id DESC);
-- The overdue sweep: pending invoices past due not yet announced.
CREATE INDEX invoices_coming_due ON invoices (due_at) WHERE status = 'PENDING' AND overdue_at IS NULL;

-- A payment on an invoice, or a wallet top-up (invoice_id NULL).
CREATE TABLE payments (
    id              uuid PRIMARY KEY,
    invoice_id      uuid REFERENCES invoices (id),
    user_id         uuid        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    currency        text        NOT NULL,
    method          text        NOT NULL CHECK (method IN ('CARD', 'BANK_TRANSFER', 'WALLET')),
    status          text        NOT NULL CHECK (status IN ('INITIATED', 'SUCCESS', 'FAILED')),
    failure_reason  text        NOT NULL DEFAULT '',
    -- CARD: the token the client gave (never a card number).
    payment_token   text        NOT NULL DEFAULT '',
    -- The provider's charge or transfer id, once known.
    provider_id     text,
    bank_reference  text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    processed_at    timestamptz
);
CREATE INDEX payments_by_invoice ON payments (invoice_id, created_at DESC, id DESC);
-- Reconciliation: payments still waiting for the provider's word.
CREATE INDEX payments_initiated ON payments (created_at) WHERE status = 'INITIATED';

-- The ledger: append-only, each entry once (unique by what caused it).
-- Accounts: RECEIVABLE (invoices issued -, payments on them +) and WALLET
-- (top-ups +, wallet payments -). A user's balance is the sum of both.
CREATE TABLE ledger_entries (
    id            bigserial PRIMARY KEY,
    user_id       uuid        NOT NULL,
    account       text        NOT NULL CHECK (account IN ('RECEIVABLE', 'WALLET')),
    kind          text        NOT NULL,
    amount_minor  bigint      NOT NULL CHECK (amount_minor <> 0),
    currency      text        NOT NULL,
    invoice_id    uuid,
    payment_id    uuid,
    created_at    timestamptz NOT NULL,
    -- What caused it: an invoice's or a payment's id, with the kind.
    cause         text        NOT NULL,
    UNIQUE (kind, cause)
);
CREATE INDEX ledger_by_user ON ledger_entries (user_id, account);

-- Provider events already applied: a redelivered webhook changes nothing.
CREATE TABLE provider_events (
    event_id    text PRIMARY KEY,
    received_at timestamptz NOT NULL
);
