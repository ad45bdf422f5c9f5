"""Telegram (Bot API, aiogram 3): bots in by long polling or webhook, replies out."""
