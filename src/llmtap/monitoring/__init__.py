"""The API of W&B Weave's OpenAI monitoring, recording into llmtap: change one import.

    from llmtap.monitoring import openai, init_monitor

    m = init_monitor("my-team/my-project/openai_logs")
    r = openai.ChatCompletion.create(model="gpt-4o-mini", messages=[...],
                                     monitor_attributes={"system_prompt": "..."})
    print(r["choices"][0]["message"]["content"])

``init_monitor("entity/project/stream")`` returns a :class:`Monitor`; every call made through
``llmtap.monitoring.openai`` after it is recorded with the attributes ``monitor_entity``,
``monitor_project`` and ``monitor_stream`` (filter with ``attributes.monitor_stream=...``),
plus the call's ``monitor_attributes``. The llmtap server and key come from ``LLMTAP_URL`` and
``LLMTAP_API_KEY``; the provider from ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``, as for any
openai client. Weave's ``wandb.login()`` has no counterpart: the llmtap key is the login.
"""

from __future__ import annotations

from . import openai
from ._monitor import Monitor, current_monitor, init_monitor

__all__ = ["Monitor", "current_monitor", "init_monitor", "openai"]
