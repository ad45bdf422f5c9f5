"""An aiogram ``Bot`` for a configured bot, pointed at its Bot API server."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer

from connectors.telegram.config import BotConfig


def make_bot(config: BotConfig) -> Bot:
    """A Bot talking to ``config.api_base`` (a self-hosted Bot API server) or to Telegram."""
    api = TelegramAPIServer.from_base(config.api_base) if config.api_base else PRODUCTION
    return Bot(config.token, session=AiohttpSession(api=api))


def redact(text: str, token: str) -> str:
    """``text`` with the bot's token blanked out (URLs of the Bot API carry it)."""
    return text.replace(token, "<token>") if token else text
