"""llmtap: a self-hosted monitor for the LLM calls a Python application makes.

import llmtap
client = llmtap.Client(llmtap=llmtap.Config(api_key="lt_..."))  # an openai.OpenAI
client.chat.completions.create(model="gpt-4o-mini", messages=[...])
"""

from ._version import __version__
from .api import Api
from .sdk import (
    AsyncAzureClient,
    AsyncClient,
    AzureClient,
    CallParams,
    Client,
    Config,
    ExportStats,
    TemplateChat,
    TemplateText,
)

__all__ = [
    "Api",
    "AsyncAzureClient",
    "AsyncClient",
    "AzureClient",
    "CallParams",
    "Client",
    "Config",
    "ExportStats",
    "TemplateChat",
    "TemplateText",
    "__version__",
]
