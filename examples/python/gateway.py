"""The three official SDKs through one PoolSwitch gateway (examples/gateway.yaml): each reaches
its pool by its base URL alone; its API key is the caller's token.

WEB_TOKEN=... POOLSWITCH_URL=http://127.0.0.1:8080 python examples/python/gateway.py
(pip install openai anthropic google-genai)
"""

from __future__ import annotations

import os
import sys

import anthropic
import google.genai
import openai
from google.genai import types


def main() -> int:
    url = os.environ.get("POOLSWITCH_URL", "http://127.0.0.1:8080")
    token = os.environ["WEB_TOKEN"]
    question = "Say hello in one word."

    gpt = openai.OpenAI(base_url=f"{url}/openai/v1", api_key=token)
    chat = gpt.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )
    print("openai:", chat.choices[0].message.content)

    claude = anthropic.Anthropic(base_url=f"{url}/anthropic", api_key=token)
    message = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": question}]
    )
    print("anthropic:", message.content)

    options = types.HttpOptions(base_url=f"{url}/gemini")
    with google.genai.Client(api_key=token, http_options=options) as gemini:
        answer = gemini.models.generate_content(model="gemini-2.5-flash", contents=question)
    print("gemini:", answer.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
