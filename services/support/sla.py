"""The SLA sweep: tickets whose first answer is overdue are marked breached,
each with one TicketSlaBreached, however many replicas sweep at once."""

from services.runtime.clock import Clock, utc_now
from services.runtime.unit_of_work import UnitOfWork
from services.support.repository import SupportRepository
from services.support.tickets import sla_breached

# Tickets marked per sweep; the rest wait for the next one.
BREACH_BATCH = 500


async def mark_breaches(uow: UnitOfWork[SupportRepository], clock: Clock = utc_now) -> int:
    """Mark every late ticket (OPEN or IN_PROGRESS, unanswered, past due) breached
    and announce it; how many were."""
    async with uow.transaction() as tx:
        now = clock()
        late = await tx.repos.mark_breached(now, BREACH_BATCH)
        for ticket in late:
            await sla_breached(tx.add_event, ticket, now)
        return len(late)
