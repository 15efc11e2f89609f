"""Phases measured in interleaved rounds: A, B, C, A, B, C, ...

Whatever drifts during a run (CPU frequency, the page cache, a neighbour's
load) then weighs on every phase alike, and the ratios of phases measured
side by side in one round stay comparable.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.closed_loop import Budget
from bench.figures import LoadFigures
from bench.report import Phase, Round

Load = Callable[[Budget], Awaitable[LoadFigures]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    label: str
    key: str
    concurrency: int
    load: Load


async def measure_once(plan: Plan, warmup: Budget, measure: Budget, progress: Progress) -> Phase:
    """One round: warm up, then measure."""
    return (await measure_interleaved([plan], 1, warmup, measure, progress))[0]


async def measure_interleaved(
    plans: Sequence[Plan], rounds: int, warmup: Budget, measure: Budget, progress: Progress
) -> list[Phase]:
    """`rounds` rounds, each warming up then measuring every plan in turn."""
    measured: dict[str, list[Round]] = {plan.key: [] for plan in plans}
    for number in range(1, rounds + 1):
        for plan in plans:
            where = f" (round {number}/{rounds})" if rounds > 1 else ""
            progress(f"{plan.label}{where}: warming up, measuring ...")
            warmed = await plan.load(warmup)
            figures = await plan.load(measure)
            measured[plan.key].append(Round(warmed, figures))
    return [
        Phase(plan.label, plan.key, plan.concurrency, tuple(measured[plan.key])) for plan in plans
    ]
