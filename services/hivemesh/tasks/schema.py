"""Tables of the task log, its projection and the SQL queue (created by the migrations beside this file)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# The projection of each task's log: what GetTask and ListTasks read. Updated in the same
# transaction as the event that changes it.
tasks = Table(
    "task_tasks",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("tenant_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("state", Integer, nullable=False),
    Column("create_time", Float, nullable=False),
    Column("update_time", Float, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    # The hash of the event at last_sequence (NULL on rows older than revision 0005).
    Column("last_hash", String(64), nullable=True),
    # The serialized hivemesh.common.v1.Task.
    Column("task", LargeBinary, nullable=False),
    # The mesh credential its runs act with (hivemesh.mesh.credentials), minted by the gateway at
    # submit and again with each answer or replay; never part of an event.
    Column("credential", Text, nullable=True),
    UniqueConstraint("tenant_id", "request_id", name="uq_task_tasks_tenant_request"),
    Index("ix_task_tasks_tenant_created", "tenant_id", "create_time"),
    Index("ix_task_tasks_state_updated", "state", "update_time"),
)

# The append-only log. Each row holds the serialized TaskEvent and the hash chain link.
events = Table(
    "task_events",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("event", LargeBinary, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# The embedded queue: one row per queued task until it is acknowledged.
queue = Table(
    "task_queue",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("tenant_id", String(128), nullable=False),
    Column("available_at", Float, nullable=False),
    Column("enqueued_at", Float, nullable=False),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", Float, nullable=True),
    Column("delivery_count", Integer, nullable=False, default=0),
    Column("trace", Text, nullable=False, default="{}"),
    Column("last_error", Text, nullable=True),
    Column("dead", Boolean, nullable=False, default=False),
    # The side of the planner's canary whose workers take the task (its session's side, chosen by
    # the gateway; hivemesh.mesh.sides), or '' for any worker.
    Column("side", String(16), nullable=False, default="", server_default=""),
    Index("ix_task_queue_ready", "dead", "available_at"),
    Index("ix_task_queue_claimed_by", "claimed_by"),
)

# Worker incarnations: one row per running planner worker pool, named after what it replaces on a
# restart (its host and port), with its last heartbeat. Claims name the incarnation holding them.
workers = Table(
    "task_workers",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("beat_at", Float, nullable=False),
    Index("ix_task_workers_name", "name"),
)

# Timers and reminders until they are delivered to the task that set them.
reminders = Table(
    "task_reminders",
    metadata,
    Column("reminder_id", String(64), primary_key=True),
    Column("task_id", String(64), nullable=False),
    Column("tenant_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("due", Float, nullable=False),
    Column("claimed_until", Float, nullable=True),
    Column("delivered", Boolean, nullable=False, default=False),
    Index("ix_task_reminders_due", "delivered", "due"),
)
