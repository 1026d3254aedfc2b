from __future__ import annotations

from hivemesh.mesh.metrics import Metrics
from hivemesh.tasks.gauges import QueueGauges
from hivemesh.tasks.system import TaskSystem
from tests.tasks.test_log import new_task


async def test_gauges_report_queue_depth_and_dead_letters(any_tasks: TaskSystem) -> None:
    metrics = Metrics()
    gauges = QueueGauges(any_tasks.queue, metrics)
    for _ in range(3):
        await any_tasks.submit(new_task(), trace={})
    await gauges.sample()
    assert metrics.registry.get_sample_value("hivemesh_queue_depth") == 3
    assert metrics.registry.get_sample_value("hivemesh_dead_letters") == 0
    claim = await any_tasks.queue.claim("w1", 30)
    assert claim is not None
    await any_tasks.queue.dead_letter(claim.task_id, "w1", "POISON: always fails")
    await gauges.sample()
    assert metrics.registry.get_sample_value("hivemesh_queue_depth") == 2
    assert metrics.registry.get_sample_value("hivemesh_dead_letters") == 1
