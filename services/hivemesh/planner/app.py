"""Wiring of the planner service: the PlannerService RPCs and the queue workers."""

from __future__ import annotations

from hivemesh.common.v1.release_pb2 import ReleasePart
from hivemesh.mesh import release
from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import guard_for
from hivemesh.mesh.instance import successor_name
from hivemesh.mesh.language_pools import language_pools
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.releases import ASKS, DECIDING_SERVICES, GrpcReleases, SideMap
from hivemesh.mesh.server import ServiceApp
from hivemesh.planner.capabilities import CapabilityCache
from hivemesh.planner.clients import GrpcLanguage, GrpcMemory, GrpcTools
from hivemesh.planner.config import PlannerConfig, PlannerStrategy
from hivemesh.planner.ports import Strategy
from hivemesh.planner.runner import LLM_PROMPT_VERSION, BuiltinRunner, LlmRunner
from hivemesh.planner.service import Planner
from hivemesh.planner.servicer import PlannerServicer
from hivemesh.planner.v1 import planner_service_pb2_grpc as pb_grpc
from hivemesh.planner.worker import WorkerPool
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.reminders import ReminderDispatcher
from hivemesh.tasks.system import shared_task_system


def build(settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp:
    queue = TaskConfig.from_env()
    tasks = shared_task_system(settings, queue)
    config = PlannerConfig.from_env()
    use_llm = config.strategy is PlannerStrategy.LLM
    limit = config.downstream_concurrency
    bulkheads = {name: WaitingBulkhead(name, limit) for name in ("language", "memory", "tool")}
    # One for the whole process, so that every task shares its copy of the tool catalogue.
    tools = GrpcTools(channels, bulkheads["tool"], config.tool_catalogue_max_age_s)
    # With a GPU pool, one routing state for the process; without, the one language channel.
    pools = language_pools(settings, channels, metrics, "planner")
    capabilities = CapabilityCache()

    def runner() -> Strategy:
        # Channels open lazily, so downstream services may start after the planner.
        language = GrpcLanguage(channels, bulkheads["language"], pools)
        memory = GrpcMemory(channels, bulkheads["memory"])
        if use_llm:
            return LlmRunner(language, memory, tools)
        return BuiltinRunner(language, memory, tools, capabilities=capabilities)

    def describe(part: ReleasePart) -> None:
        if use_llm:
            part.prompt_version = LLM_PROMPT_VERSION

    workers = WorkerPool(
        tasks,
        runner,
        settings,
        metrics,
        concurrency=config.workers,
        name=successor_name(settings, "planner"),
        releases=GrpcReleases(
            release.part("planner", settings.server.release, describe),
            SideMap(
                channels,
                # With sticky sessions the planner also asks which side of its own canary runs its
                # release, through the mesh even when it could answer itself in-process.
                ASKS["planner"] if config.sticky_sessions else DECIDING_SERVICES,
                sticky=config.sticky_sessions,
                addresses={"planner": settings.addresses["planner"]},
            ),
        ),
        sticky=config.sticky_sessions,
        queue=queue,
    )
    planner = Planner(GrpcLanguage(channels, bulkheads["language"], pools), tools, runner(), capabilities)
    servicer = PlannerServicer(planner)
    return ServiceApp(
        name="planner",
        guard=guard_for(settings, "planner"),
        register=lambda server: pb_grpc.add_PlannerServiceServicer_to_server(servicer, server),
        components=[
            *([] if pools is None else [pools]),
            tasks,
            workers,
            ReminderDispatcher(tasks.reminders, tasks.log),
        ],
        describe=describe,
    )
