"""Any interleaving of Remember, Update and Forget (and the clock moving on) leaves a consistent
history, and Recall never returns a forgotten, expired or foreign-tenant memory."""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivemesh.memory.adapters.edge_index import EdgeIndex
from hivemesh.memory.adapters.sql_ledger import SqlLedger
from hivemesh.memory.config import HnswSettings
from hivemesh.memory.hashing import HashingEmbedder
from hivemesh.memory.knowledge import KnowledgeSettings, LongTermMemory
from hivemesh.memory.model import ChangeAction, Owner, Query
from hivemesh.memory.runtime import MIGRATIONS, VERSION_TABLE
from hivemesh.mesh.errors import Aborted, NotFound
from hivemesh.mesh.sql import make_engine, run_migrations, sqlite_url
from tests.memory.harness import Clock

OWNERS = (Owner("t1", "u"), Owner("t2", "u"))

remember = st.tuples(st.just("remember"), st.integers(0, 1), st.integers(0, 4), st.sampled_from([None, 30.0]))
update = st.tuples(st.just("update"), st.integers(0, 1), st.integers(0, 20), st.integers(0, 1))
forget = st.tuples(st.just("forget"), st.integers(0, 1), st.integers(0, 20), st.just(0))
tick = st.tuples(st.just("tick"), st.just(0), st.integers(1, 60), st.just(0))
operations = st.lists(st.one_of(remember, update, forget, tick), min_size=1, max_size=14)

MIDDLE = {ChangeAction.MERGED, ChangeAction.UPDATED}
LAST = {ChangeAction.FORGOTTEN, ChangeAction.EXPIRED}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
async def test_interleavings_keep_history_and_recall_consistent(
    ops: list[tuple[str, int, int, object]],
) -> None:
    clock = Clock()
    async with AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        engine = make_engine(sqlite_url(directory / "memory.db"))
        stack.push_async_callback(engine.dispose)
        await run_migrations(engine, MIGRATIONS, VERSION_TABLE)
        index = EdgeIndex(directory / "qdrant", HnswSettings())
        await index.open()
        stack.push_async_callback(index.close)
        memory = LongTermMemory(SqlLedger(engine), index, HashingEmbedder(64), KnowledgeSettings(), clock)

        ids: list[tuple[Owner, str]] = []
        forgotten: set[str] = set()
        for op, who, n, extra in ops:
            owner = OWNERS[who]
            if op == "remember":
                ttl = extra if isinstance(extra, float) else None
                made = await memory.remember(owner, "s", f"fact zebra {n}", {"n": str(n)}, ttl)
                if (owner, made.memory.memory_id) not in ids:
                    ids.append((owner, made.memory.memory_id))
            elif op == "update" and ids:
                target_owner, memory_id = ids[n % len(ids)]
                try:
                    current = (await memory.history(target_owner, memory_id))[-1].version
                    stale = int(str(extra))
                    await memory.update(target_owner, memory_id, f"changed zebra {n}", current - stale, {})
                except (Aborted, NotFound):
                    pass
            elif op == "forget" and ids:
                target_owner, memory_id = ids[n % len(ids)]
                if await memory.forget(target_owner, memory_id, {}):
                    forgotten.add(memory_id)
            elif op == "tick":
                clock.now += n
                await memory.sweep()

        for owner, memory_id in ids:
            changes = await memory.history(owner, memory_id)
            assert [c.version for c in changes] == list(range(1, len(changes) + 1))
            assert changes[0].action is ChangeAction.REMEMBERED
            assert all(c.action in MIDDLE for c in changes[1:-1])
            if len(changes) > 1:
                assert changes[-1].action in MIDDLE | LAST
            assert (changes[-1].action is ChangeAction.FORGOTTEN) == (memory_id in forgotten)

        for owner in OWNERS:
            for n in range(5):
                hits = await memory.recall(owner, Query(text=f"fact zebra {n}", top_k=50))
                for hit in hits:
                    assert hit.memory.owner == owner
                    assert hit.memory.memory_id not in forgotten
                    assert not hit.memory.expired(clock.now)
                    assert (owner, hit.memory.memory_id) in ids
