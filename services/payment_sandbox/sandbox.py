"""What the sandbox does for each API call, apart from HTTP: the card processor itself."""

import dataclasses
import threading
import time

from services.payment_sandbox.answers import Answer, error_document, json_answer, list_answer
from services.payment_sandbox.errors import InvalidRequest, NotFound, StateConflict
from services.payment_sandbox.idempotency import IdempotencyLedger, fingerprint
from services.payment_sandbox.records import (
    Charge,
    Transfer,
    event_type,
    new_bank_reference,
    new_id,
    settle_charge,
    settle_transfer,
)
from services.payment_sandbox.scheduling import DelayQueue, start_workers
from services.payment_sandbox.store import DEFAULT_CAPACITY, Collection
from services.payment_sandbox.tokens import HANGING_TOKENS, KNOWN_TOKENS, decline_for, is_known
from services.payment_sandbox.validation import ChargeRequest, TransferRequest, WebhookMode
from services.payment_sandbox.webhooks import Webhooks

CHARGES_ENDPOINT = "POST /v1/charges"
TRANSFERS_ENDPOINT = "POST /v1/transfers"


class Sandbox:
    """Charges, transfers and their events; every method is safe from many threads."""

    def __init__(
        self,
        webhooks: Webhooks,
        hang_seconds: float = 30.0,
        transfer_seconds: float | None = None,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.webhooks = webhooks
        self._hang_seconds = hang_seconds
        self._transfer_seconds = transfer_seconds
        self._charges: Collection[Charge] = Collection(capacity)
        self._transfers: Collection[Transfer] = Collection(capacity)
        self._idempotency = IdempotencyLedger(capacity)
        self._arrivals: DelayQueue[str] = DelayQueue()
        # Cut short by stop(): a hanging charge then answers at once.
        self._stopping = threading.Event()

    def start(self) -> None:
        self.webhooks.start()
        start_workers(self._arrivals, self._arrive, 1, "transfer-arrival")

    def stop(self) -> None:
        self._stopping.set()
        self._arrivals.close()
        self.webhooks.stop()

    # Charges

    def create_charge(self, key: str, request: ChargeRequest) -> Answer:
        if not is_known(request.source):
            raise InvalidRequest(
                f"no such test token; use one of {', '.join(KNOWN_TOKENS)}", "token_unknown"
            )
        request_fingerprint = fingerprint(CHARGES_ENDPOINT, dataclasses.asdict(request))
        return self._idempotency.run(key, request_fingerprint, lambda: self._charge(request))

    def charge(self, id_: str) -> Answer:
        return json_answer(200, _found(self._charges.get(id_), "charge"))

    def charges_with_reference(self, reference: str) -> Answer:
        return list_answer(self._charges.with_reference(reference))

    def all_charges(self) -> Answer:
        return list_answer(self._charges.all())

    def _charge(self, request: ChargeRequest) -> Answer:
        charge = Charge(
            id=new_id("ch"),
            amount=request.amount,
            currency=request.currency,
            reference=request.reference,
            description=request.description,
            created=int(time.time()),
        )
        self._charges.add(charge)
        if request.source in HANGING_TOKENS:
            # Pending and findable by reference while the caller waits (or gives up).
            self._stopping.wait(self._hang_seconds)
        decline = decline_for(request.source)
        settled = self._charges.change(charge.id, lambda c: settle_charge(c, decline))
        if settled is None:
            # Forgotten meanwhile (past the capacity): this caller still gets its answer.
            settled = settle_charge(charge, decline), charge.to_json()
        changed, document = settled
        if changed:
            self.webhooks.publish(event_type(document), document)
        if decline is None:
            return json_answer(200, document)
        return json_answer(
            402, error_document("card_error", decline.message, decline.code, charge=charge.id)
        )

    # Transfers

    def create_transfer(self, key: str, request: TransferRequest) -> Answer:
        request_fingerprint = fingerprint(TRANSFERS_ENDPOINT, dataclasses.asdict(request))
        return self._idempotency.run(key, request_fingerprint, lambda: self._transfer(request))

    def transfer(self, id_: str) -> Answer:
        return json_answer(200, _found(self._transfers.get(id_), "transfer"))

    def transfers_with_reference(self, reference: str) -> Answer:
        return list_answer(self._transfers.with_reference(reference))

    def settle_transfer(self, id_: str, arrived: bool) -> Answer:
        """The money arrived (or was returned): 404 if unknown, 409 if already settled."""
        settled = self._transfers.change(id_, lambda t: settle_transfer(t, arrived))
        if settled is None:
            raise NotFound("no such transfer", "resource_missing")
        changed, document = settled
        if not changed:
            raise StateConflict("the transfer is no longer pending", "transfer_not_pending")
        self.webhooks.publish(event_type(document), document)
        return json_answer(200, document)

    def _transfer(self, request: TransferRequest) -> Answer:
        transfer = Transfer(
            id=new_id("tr"),
            amount=request.amount,
            currency=request.currency,
            reference=request.reference,
            bank_reference=new_bank_reference(),
            created=int(time.time()),
        )
        document = self._transfers.add(transfer)
        if self._transfer_seconds is not None:
            self._arrivals.put(transfer.id, self._transfer_seconds)
        return json_answer(200, document)

    def _arrive(self, transfer_id: str) -> None:
        # A test may have settled (or the store forgotten) it already: nothing to do then.
        settled = self._transfers.change(transfer_id, lambda t: settle_transfer(t, True))
        if settled is not None and settled[0]:
            self.webhooks.publish(event_type(settled[1]), settled[1])

    # Test controls

    def set_webhook_mode(self, mode: WebhookMode) -> Answer:
        self.webhooks.set_mode(mode)
        return json_answer(200, {"object": "webhook_mode", **dataclasses.asdict(mode)})

    def replay_webhooks(self) -> Answer:
        return json_answer(200, {"object": "replay", "events": self.webhooks.replay()})

    def events(self) -> Answer:
        return list_answer(self.webhooks.events())


def _found(document: dict[str, object] | None, what: str) -> dict[str, object]:
    if document is None:
        raise NotFound(f"no such {what}", "resource_missing")
    return document
