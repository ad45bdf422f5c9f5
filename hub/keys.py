"""The typed application keys under which the hub's shared services live."""

from __future__ import annotations

from aiohttp import web

from crm_core.clock import Clock
from crm_core.contracts import ChannelSender
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.events import EventBus
from crm_core.ingest import IngestService
from crm_core.outbox import OutboxRelay
from hub.routing_follow import RoutingFollower
from hub.routing_setup import RoutingState
from hub.settings import Settings
from hub.tokens import TokenCache

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DATABASE = web.AppKey("database", Database)
INGEST = web.AppKey("ingest", IngestService)
EVENTS = web.AppKey("events", EventBus)
RELAY = web.AppKey("relay", OutboxRelay)
TOKENS = web.AppKey("tokens", TokenCache)
SENDERS = web.AppKey("senders", dict[Channel, ChannelSender])
ROUTING = web.AppKey("routing", RoutingState)
ROUTING_FOLLOWER = web.AppKey("routing_follower", RoutingFollower)
