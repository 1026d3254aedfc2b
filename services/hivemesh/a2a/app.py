"""The A2A front door (``A2ADoor``) as an ASGI application (JSON-RPC and HTTP+JSON) and a gRPC
servicer, both over one ``GatewayRequestHandler``.

Routes, relative to where the application is mounted (``public_url``):
- ``GET /.well-known/agent-card.json``: the Agent Card;
- ``POST /``: JSON-RPC, A2A 1.0 method names (``SendMessage``, ``SendStreamingMessage``,
  ``GetTask``, ``CancelTask``, ``SubscribeToTask``) and 0.3 ones (``message/send``,
  ``message/stream``, ``tasks/get``, ``tasks/cancel``, ``tasks/resubscribe``);
- ``/rest/...``: HTTP+JSON (``POST /rest/message:send``, ``GET /rest/tasks/{id}``, ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.types import a2a_pb2 as a2a
from a2a.types import a2a_pb2_grpc
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol
from a2a.utils.push_url_validator import validate_push_notification_url
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from hivemesh.a2a.gateway import Credentials, GrpcTaskGateway
from hivemesh.a2a.handler import ExtendedCard, GatewayRequestHandler
from hivemesh.a2a.push import PushNotifier, RetryPolicy, UrlValidator
from hivemesh.a2a.push_store import PushStore
from hivemesh.a2a.skills import ASK_SKILL, TEXT, CatalogueSkills, SkillSource
from hivemesh.mesh.config import TlsConfig

REST_PATH = "/rest"
BEARER_SCHEME = "bearer"
API_KEY_SCHEME = "apiKey"


@dataclass(frozen=True)
class CardInfo:
    """What the card says about the agent besides its skills."""

    name: str = "hivemesh"
    description: str = (
        "A hivemesh agent: it understands requests in plain words, runs tools (calculator, units, "
        "dates, timers, reminders, lists...) and remembers the conversation."
    )
    version: str = "0.1.0"
    # Whether calls need an API key or a JWT (the gateway's HIVEMESH_AUTH).
    credentials_required: bool = True


def agent_card(
    public_url: str, info: CardInfo, grpc_url: str | None = None, *, push_notifications: bool = True
) -> a2a.AgentCard:
    base = public_url.rstrip("/")
    interfaces = [
        a2a.AgentInterface(
            url=f"{base}/", protocol_binding=TransportProtocol.JSONRPC, protocol_version=PROTOCOL_VERSION_1_0
        ),
        a2a.AgentInterface(
            url=f"{base}{REST_PATH}",
            protocol_binding=TransportProtocol.HTTP_JSON,
            protocol_version=PROTOCOL_VERSION_1_0,
        ),
    ]
    if grpc_url:
        interfaces.append(
            a2a.AgentInterface(
                url=grpc_url, protocol_binding=TransportProtocol.GRPC, protocol_version=PROTOCOL_VERSION_1_0
            )
        )
    card = a2a.AgentCard(
        name=info.name,
        description=info.description,
        version=info.version,
        supported_interfaces=interfaces,
        capabilities=a2a.AgentCapabilities(
            streaming=True, push_notifications=push_notifications, extended_agent_card=True
        ),
        default_input_modes=[TEXT],
        default_output_modes=[TEXT],
        skills=[ASK_SKILL],
        security_schemes={
            BEARER_SCHEME: a2a.SecurityScheme(
                http_auth_security_scheme=a2a.HTTPAuthSecurityScheme(
                    scheme="bearer",
                    description="A hivemesh API key (hmk_...) or a JWT of the gateway's identity provider.",
                )
            ),
            API_KEY_SCHEME: a2a.SecurityScheme(
                api_key_security_scheme=a2a.APIKeySecurityScheme(
                    location="header", name="X-API-Key", description="A hivemesh API key (hmk_...)."
                )
            ),
        },
    )
    if info.credentials_required:
        card.security_requirements.extend(
            [
                a2a.SecurityRequirement(schemes={BEARER_SCHEME: a2a.StringList()}),
                a2a.SecurityRequirement(schemes={API_KEY_SCHEME: a2a.StringList()}),
            ]
        )
    return card


def _with_skills(card: a2a.AgentCard, skills: Sequence[a2a.AgentSkill]) -> a2a.AgentCard:
    served = a2a.AgentCard()
    served.CopyFrom(card)
    del served.skills[:]
    served.skills.extend(skills)
    return served


def _cards(
    card: a2a.AgentCard, skills: SkillSource
) -> tuple[Callable[[a2a.AgentCard], Awaitable[a2a.AgentCard]], ExtendedCard]:
    """The public card's per-request modifier and the extended card, both with live skills."""

    async def public(_: a2a.AgentCard) -> a2a.AgentCard:
        return _with_skills(card, await skills.public())

    async def extended(credentials: Credentials) -> a2a.AgentCard:
        return _with_skills(card, await skills.for_caller(credentials))

    return public, extended


class A2ADoor:
    """The A2A door for the gateway at ``gateway_address``: the ASGI application (``app``: the
    card, JSON-RPC, HTTP+JSON) and the gRPC binding (``grpc_servicer``) over one request handler,
    one push notifier and its store. ``public_url`` is where clients reach ``app`` (the card names
    it); ``grpc_url``, when set, where a server running ``grpc_servicer`` is. Webhooks must pass
    ``push_url_validator`` (by default: public http(s) addresses only; None admits any). The card's
    skills come from ``skills``, by default the gateway's live tool catalogue; ``tls``: how the
    gateway is reached when it listens with TLS. ``start`` it in the
    serving event loop, ``close`` it when its servers have stopped."""

    def __init__(
        self,
        gateway_address: str,
        public_url: str,
        *,
        push_store: PushStore,
        skills: SkillSource | None = None,
        info: CardInfo | None = None,
        grpc_url: str | None = None,
        push_url_validator: UrlValidator | None = validate_push_notification_url,
        push_retry: RetryPolicy | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self._gateway = GrpcTaskGateway(gateway_address, tls=tls)
        self._push = PushNotifier(
            self._gateway, push_store, retry=push_retry, url_validator=push_url_validator
        )
        card = agent_card(public_url, info or CardInfo(), grpc_url)
        public, extended = _cards(card, skills or CatalogueSkills(self._gateway))
        self._handler = GatewayRequestHandler(self._gateway, self._push, extended_card=extended)
        routes: Sequence[BaseRoute] = [
            *create_agent_card_routes(card, card_modifier=public),
            *create_jsonrpc_routes(self._handler, "/", enable_v0_3_compat=True),
            Mount(REST_PATH, routes=create_rest_routes(self._handler, enable_v0_3_compat=True)),
        ]
        self.app = Starlette(routes=list(routes))

    def grpc_servicer(self) -> GrpcHandler:
        return GrpcHandler(self._handler)

    async def start(self) -> None:
        await self._push.start()

    async def close(self) -> None:
        await self._push.close()
        await self._gateway.close()


def add_a2a_servicer(servicer: GrpcHandler, server: grpc.aio.Server) -> None:
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
