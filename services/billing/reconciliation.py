"""Payments left INITIATED (a crash or a timeout between our write and the provider's
answer) are asked after, by our payment id, until they settle.

The provider knows it: its answer is applied (settling it, or recording a
transfer still pending). It never received it: it is sent again with the same
idempotency key, which cannot charge twice. Each asked payment waits
ASK_AFTER again before the next question.
"""

import logging
from datetime import timedelta

from services.billing.payments import PaymentHandlers
from services.billing.provider import ProviderClient, ProviderUnavailable
from services.billing.records import CARD, PaymentRecord
from services.billing.repository import BillingRepository
from services.runtime.clock import Clock, utc_now
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
# Longer than a provider call may take (its timeout), so a payment being
# charged right now is not asked after.
ASK_AFTER = timedelta(seconds=15)
BATCH = 100


class Reconciliation:
    def __init__(
        self,
        uow: UnitOfWork[BillingRepository],
        payments: PaymentHandlers,
        provider: ProviderClient,
        clock: Clock = utc_now,
        ask_after: timedelta = ASK_AFTER,
    ) -> None:
        self._uow = uow
        self._payments = payments
        self._provider = provider
        self._clock = clock
        self._ask_after = ask_after

    async def run_once(self) -> int:
        """Ask after the payments waiting longest; how many were asked after."""
        async with self._uow.read() as repos:
            waiting = await repos.stale_initiated(self._clock() - self._ask_after, BATCH)
        for payment in waiting:
            try:
                await self._ask(payment)
            finally:
                # Asked (answered or not): it waits its turn again, so the oldest
                # cannot keep the rest from being asked after.
                async with self._uow.transaction() as tx:
                    await tx.repos.touch_payment(payment.id, self._clock())
        return len(waiting)

    async def _ask(self, payment: PaymentRecord) -> None:
        kind = "charges" if payment.method == CARD else "transfers"
        try:
            found = await self._provider.find(payment, kind)
        except ProviderUnavailable as error:
            log.warning("could not ask the provider about payment %s: %s", payment.id, error)
            return
        if found is None:
            await self._payments.send_to_provider(payment)
        else:
            await self._payments.apply(payment.id, found)
