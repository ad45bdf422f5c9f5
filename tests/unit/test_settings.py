from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings, SettingsError, load_settings


def test_defaults_work_without_file_or_environment() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.is_sqlite


def test_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "omnihub.toml"
    config.write_text(
        'port = 9000\ndefault_region = "KZ"\n[funnel_by_channel]\nform = "landing"\n',
        encoding="utf-8",
    )
    settings = load_settings(config, env={"OMNIHUB_PORT": "9100", "OMNIHUB_ACCESS_LOG": "yes"})
    assert settings.port == 9100
    assert settings.default_region == "KZ"
    assert settings.access_log is True
    assert settings.funnel_by_channel == {"form": "landing"}


def test_unknown_or_mistyped_settings_are_refused_with_their_name(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("prot = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(config, env={})
    config.write_text('port = "eighty"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="port"):
        load_settings(config, env={})
    with pytest.raises(SettingsError, match="OMNIHUB_PORT"):
        load_settings(env={"OMNIHUB_PORT": "x"})


def test_channel_tables_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "omnihub.toml"
    config.write_text('[channels.telegram]\nbots = [{key = "sales"}]\n', encoding="utf-8")
    assert load_settings(config, env={}).channels == {"telegram": {"bots": [{"key": "sales"}]}}
    env = {"OMNIHUB_CHANNELS": '{"email": {"mailboxes": []}}'}
    assert load_settings(env=env).channels == {"email": {"mailboxes": []}}
    with pytest.raises(SettingsError, match="OMNIHUB_CHANNELS"):
        load_settings(env={"OMNIHUB_CHANNELS": "{oops"})
    config.write_text("[channels]\ntelegram = 5\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="one table per channel"):
        load_settings(config, env={})
