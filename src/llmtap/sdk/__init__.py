"""The SDK: drop-in openai clients, prompt templates, and the background exporter.

Imports nothing from ``llmtap.server`` or ``llmtap.store``: it runs inside the user's process
with only ``openai`` and what it brings.
"""

from ._client import AsyncAzureClient, AsyncClient, AzureClient, Client
from ._config import CallParams, Config
from ._stats import ExportStats
from ._templates import TemplateChat, TemplateText

__all__ = [
    "AsyncAzureClient",
    "AsyncClient",
    "AzureClient",
    "CallParams",
    "Client",
    "Config",
    "ExportStats",
    "TemplateChat",
    "TemplateText",
]
