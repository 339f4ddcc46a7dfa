"""The public surface is deliberate: pinned names, documented settings."""

from __future__ import annotations

import dataclasses

import llmtap
from llmtap.settings import SETTINGS, resolve


def test_all_is_pinned() -> None:
    assert sorted(llmtap.__all__) == sorted(
        [
            "Api",
            "AsyncAzureClient",
            "AsyncClient",
            "AzureClient",
            "CallParams",
            "Client",
            "Config",
            "TemplateChat",
            "TemplateText",
            "__version__",
        ]
    )
    for name in llmtap.__all__:
        assert getattr(llmtap, name) is not None


def test_clients_are_openai_clients() -> None:
    import openai

    assert issubclass(llmtap.Client, openai.OpenAI)
    assert issubclass(llmtap.AsyncClient, openai.AsyncOpenAI)
    assert issubclass(llmtap.AzureClient, openai.AzureOpenAI)
    assert issubclass(llmtap.AsyncAzureClient, openai.AsyncAzureOpenAI)


def test_every_setting_is_documented_and_every_config_field_is_a_setting() -> None:
    for setting in SETTINGS.values():
        assert setting.help.endswith(".") and len(setting.help) > 15, setting.name
        assert setting.env == "LLMTAP_" + setting.name.upper()
        assert setting.scope in {"sdk", "server"}
    for field in dataclasses.fields(llmtap.Config):
        assert field.name in SETTINGS, field.name


def test_resolution_order() -> None:
    env = {"LLMTAP_SAMPLE_RATE": "0.5", "LLMTAP_ENABLED": "no", "LLMTAP_ATTRIBUTES": '{"a": 1}'}
    assert resolve("sample_rate", 0.25, env) == 0.25
    assert resolve("sample_rate", None, env) == 0.5
    assert resolve("sample_rate", None, {}) == 1.0
    assert resolve("enabled", None, env) is False
    assert resolve("attributes", None, env) == {"a": 1}


def test_templates_are_str_and_list() -> None:
    text = llmtap.TemplateText("{a} and {b} and {not_given} and {{json}}", {"a": 1, "b": "x"})
    assert isinstance(text, str)
    assert text == "1 and x and {not_given} and {{json}}"
    chat = llmtap.TemplateChat(
        [{"role": "user", "content": [{"type": "text", "text": "{a}"}]}], {"a": "filled"}
    )
    assert isinstance(chat, list)
    assert chat[0]["content"][0]["text"] == "filled"
    assert chat.template[0]["content"][0]["text"] == "{a}"


def test_compat_surfaces_are_pinned() -> None:
    import llmtap.libretto
    import llmtap.monitoring
    import llmtap.monitoring.openai
    import llmtap.pii

    assert sorted(llmtap.libretto.__all__) == [
        "AsyncClient",
        "Client",
        "FEEDBACK_KEY_FIELD",
        "LibrettoConfig",
        "LibrettoCreateParams",
        "TemplateChat",
        "TemplateString",
        "TemplateText",
    ]
    assert llmtap.libretto.TemplateString is llmtap.TemplateText
    assert issubclass(llmtap.libretto.Client, llmtap.Client)
    assert issubclass(llmtap.libretto.AsyncClient, llmtap.AsyncClient)
    assert sorted(llmtap.monitoring.__all__) == [
        "Monitor",
        "current_monitor",
        "init_monitor",
        "openai",
    ]
    assert sorted(llmtap.monitoring.openai.__all__) == [
        "ChatCompletion",
        "Completion",
        "OpenAIObject",
        "message_from_stream",
    ]
    assert sorted(llmtap.pii.__all__) == [
        "ENTITY_TYPES",
        "EVENT_TEXT_FIELDS",
        "PiiExtraMissing",
        "redact_event",
        "redact_text",
        "redact_value",
        "require",
    ]
